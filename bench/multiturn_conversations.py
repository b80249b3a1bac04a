"""The conversations of `bench/multiturn_eval.py`: the last user turn of each is searched, and the
passage that answers it is known (its document, and a few words only that passage holds).

- `follow-up`: the last turn needs an earlier one ("and what does E42 mean?" after a question
  about one product: four manuals have an E42);
- `switch`: the last turn changes the subject, and an earlier topic must not be dragged in
  ("now, on the oven, what is E42?" after a dishwasher question);
- `first`: a single question, the control (every strategy searches the same there).

English and Portuguese, and a few asked in one language about a document in the other.
Corpus: `tests/fixtures/knowledge/manuals/` (six manuals, en and pt) and `alicerce/samples/`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Conversation:
    kind: str  # follow-up | switch | first
    language: str  # of the last turn: en | pt
    turns: tuple[str, ...]  # user, assistant, user, ... ending with the user turn searched
    document: str  # the document that answers the last turn
    fact: str  # words only the answering passage holds (the right passage reached the model)

    def messages(self) -> list[dict[str, str]]:
        roles = ("user", "assistant")
        return [{"role": roles[i % 2], "content": text} for i, text in enumerate(self.turns)]


AURORA = "aurora-x2-dishwasher.md"
BOREALIS = "borealis-b60-oven.md"
CIRRUS = "cirrus-r5-router.md"
PORTAL = "customer-portal.md"
BRISA = "lavadora-brisa.md"
MONCAO = "ar-condicionado-moncao.md"
BILLING = "cobranca-e-limites.md"
RAG = "knowledge-and-rag.md"
ABOUT = "o-que-e-o-alicerce.md"
FAQ = "faq.html"

C = Conversation
CONVERSATIONS: list[Conversation] = [
    # -- follow-ups, English -----------------------------------------------------------------
    C("follow-up", "en", (
        "My Aurora X2 dishwasher stopped in the middle of a cycle.",
        "I'm sorry to hear that. Does the display show a code?",
        "Yes. And what does error E42 mean?",
    ), AURORA, "within 4 minutes"),
    C("follow-up", "en", (
        "I'm about to run the self-cleaning programme of my Borealis oven.",
        "Good idea: remove the racks first.",
        "It says E42 now, what should I do?",
    ), BOREALIS, "door lock fault"),
    C("follow-up", "en", (
        "I set up my new Cirrus R5 yesterday.",
        "Great! How can I help?",
        "What does E42 mean on it?",
    ), CIRRUS, "PPPoE"),
    C("follow-up", "en", (
        "How do I clean the filter of the Aurora X2?",
        "Take out the lower basket and twist the filter counter-clockwise.",
        "Thanks. And how long is its warranty?",
    ), AURORA, "5 years"),
    C("follow-up", "en", (
        "What is the warranty on the Borealis B60?",
        "Three years.",
        "How do I set its clock?",
    ), BOREALIS, "blinks 12:00"),
    C("follow-up", "en", (
        "I just bought a Cirrus R5 router.",
        "Congratulations! It is easy to set up.",
        "How do I reset it to the factory settings?",
    ), CIRRUS, "10 seconds"),
    C("follow-up", "en", (
        "Tell me about the pyrolysis programme of the Borealis oven.",
        "It heats the empty oven to burn grease to ash.",
        "How long does it take?",
    ), BOREALIS, "It takes 3"),
    C("follow-up", "en", (
        "Which programmes does the Aurora X2 have?",
        "Eco, Intensive and Quick.",
        "What temperature does Intensive use?",
    ), AURORA, "70 °C"),
    C("follow-up", "en", (
        "I have a Cirrus R5.",
        "How can I help with it?",
        "The light is red and blinking.",
        "Is that a problem with my internet connection?",
        "It can be. Did you check the cable?",
        "Yes. Also, when does it install updates?",
    ), CIRRUS, "3 am"),
    C("follow-up", "en", (
        "How are knowledge searches billed in Alicerce?",
        "Each search is a knowledge.search line item.",
        "And what about indexing documents?",
    ), BILLING, "1.000 tokens"),
    # -- follow-ups, Portuguese --------------------------------------------------------------
    C("follow-up", "pt", (
        "Minha máquina de lavar Brisa parou no meio da lavagem.",
        "Aparece algum código no visor?",
        "Sim. O que significa o erro E42?",
    ), BRISA, "roupa presa"),
    C("follow-up", "pt", (
        "O ar-condicionado Monção não está gelando.",
        "Aparece algum código no painel?",
        "Aparece E42. O que é?",
    ), MONCAO, "comunicação"),
    C("follow-up", "pt", (
        "Como limpo os filtros do ar-condicionado Monção?",
        "Abra a tampa frontal e retire os dois filtros.",
        "E qual é a garantia dele?",
    ), MONCAO, "7 anos"),
    C("follow-up", "pt", (
        "Acabei de comprar a máquina de lavar Brisa.",
        "Parabéns! Ela é fácil de instalar.",
        "O que preciso remover antes de ligar?",
    ), BRISA, "parafusos de transporte"),
    C("follow-up", "pt", (
        "Quais programas a lavadora Brisa tem?",
        "Algodão, Sintéticos, Delicados e Rápido.",
        "Quanto tempo dura o rápido?",
    ), BRISA, "15 minutos"),
    C("follow-up", "pt", (
        "Esqueci a senha do portal do cliente da Acme.",
        "Use a opção 'Forgot password' na tela de entrada.",
        "Por quanto tempo o código vale?",
    ), PORTAL, "15 minutes"),
    C("follow-up", "pt", (
        "Minha lava-louças Aurora X2 mostra o erro E11.",
        "A bomba de drenagem está bloqueada: limpe o filtro.",
        "Resolvido. E quanto tempo dura a garantia?",
    ), AURORA, "5 years"),
    C("follow-up", "pt", (
        "O controle remoto do ar-condicionado Monção tem modo Sono?",
        "Sim, ele aumenta a temperatura aos poucos durante a noite.",
        "E a que distância pode ficar a unidade externa?",
    ), MONCAO, "15 metros"),
    C("follow-up", "pt", (
        "O que é um gateway no Alicerce?",
        "Um modelo virtual com instruções, parâmetros e conhecimento.",
        "E como eu crio um pela linha de comando?",
    ), ABOUT, "gateways create"),
    C("follow-up", "pt", (
        "Minha lavadora Brisa mostra E21.",
        "É falha de drenagem.",
        "De quanto em quanto tempo devo limpar o filtro da bomba?",
    ), BRISA, "três meses"),
    C("follow-up", "en", (
        "What does E42 mean on the Borealis oven?",
        "A door lock fault: the door did not lock for the pyrolysis.",
        "And on the Cirrus router?",
    ), CIRRUS, "PPPoE"),
    C("follow-up", "en", (
        "Where can the Borealis B60 be installed?",
        "It needs its own 16 A circuit.",
        "How much space should I leave behind it?",
    ), BOREALIS, "5 cm"),
    C("follow-up", "pt", (
        "O que significa E42 na lavadora Brisa?",
        "A porta não travou.",
        "E no ar-condicionado Monção?",
    ), MONCAO, "comunicação"),
    C("follow-up", "pt", (
        "Quero instalar o ar-condicionado Monção na sala.",
        "Ótimo, ele atende ambientes de até 20 m².",
        "Quem pode fazer a instalação?",
    ), MONCAO, "técnico credenciado"),
    # -- topic switches ---------------------------------------------------------------------
    C("switch", "en", (
        "My Aurora X2 shows error E42.",
        "Check that the water tap is open.",
        "Different question: where do I download my invoices in the customer portal?",
    ), PORTAL, "Billing > Invoices"),
    C("switch", "en", (
        "How long does the Borealis pyrolysis take?",
        "Three hours.",
        "Thanks. How do I reset my Cirrus router?",
    ), CIRRUS, "10 seconds"),
    C("switch", "en", (
        "What is the default network name of the Cirrus R5?",
        "CIRRUS-R5 followed by four characters.",
        "Now about my Aurora dishwasher: how often should I clean its filter?",
    ), AURORA, "Once a month"),
    C("switch", "en", (
        "Tell me about the Borealis oven's self-cleaning.",
        "It is a pyrolysis programme at 480 °C.",
        "Unrelated: what is an AI gateway?",
    ), ABOUT, "gateway de IA"),
    C("switch", "en", (
        "My Aurora X2 shows E11.",
        "The drain pump is blocked; clean the filter.",
        "Separately, on my Borealis oven, what does E42 mean?",
    ), BOREALIS, "door lock fault"),
    C("switch", "en", (
        "How do I enable two-factor authentication in the customer portal?",
        "Under Profile > Security.",
        "OK. Which port does the Alicerce server listen on?",
    ), FAQ, "port 8000"),
    C("switch", "pt", (
        "O que significa E42 na lavadora Brisa?",
        "A porta não travou.",
        "Outra coisa: como ativo a autenticação em dois fatores no portal do cliente?",
    ), PORTAL, "authenticator app"),
    C("switch", "pt", (
        "Qual é a garantia do ar-condicionado Monção?",
        "Um ano, e sete no compressor.",
        "E a máquina de lavar Brisa, quais programas ela tem?",
    ), BRISA, "Sintéticos"),
    C("switch", "pt", (
        "Minha lavadora Brisa mostra E21.",
        "É falha de drenagem: limpe o filtro da bomba.",
        "Agora, no ar-condicionado Monção, o que é o erro E42?",
    ), MONCAO, "comunicação"),
    C("switch", "pt", (
        "Como limpo o filtro da lava-louças Aurora?",
        "Gire o filtro cilíndrico no sentido anti-horário.",
        "Mudando de assunto: quais são os limites por chave no Alicerce?",
    ), BILLING, "monthly_budget"),
    C("switch", "en", (
        "What does the orange light on the Cirrus R5 mean?",
        "A firmware update is being installed.",
        "Got it. What is the warranty of the Borealis oven?",
    ), BOREALIS, "3-year warranty"),
    C("switch", "en", (
        "How do I close my account in the customer portal?",
        "Write to support from the Help page.",
        "Another thing: what temperature does the Aurora X2's Eco programme use?",
    ), AURORA, "50 °C"),
    C("switch", "pt", (
        "Quanto tempo dura o programa Rápido da Brisa?",
        "15 minutos.",
        "E o ar-condicionado Monção, de quanto em quanto tempo limpo os filtros?",
    ), MONCAO, "15 dias"),
    C("switch", "pt", (
        "Como redefino a senha do portal do cliente?",
        "Escolha 'Forgot password' e digite o código que chegar por e-mail.",
        "Outra dúvida: o Alicerce funciona sem internet?",
    ), FAQ, "inside the server process"),
    C("switch", "pt", (
        "O que significa E42 no roteador Cirrus?",
        "Falha de autenticação PPPoE.",
        "Agora sobre a lavadora Brisa: o que significa o erro E42?",
    ), BRISA, "roupa presa"),
    # -- first questions (controls) -----------------------------------------------------------
    C("first", "en", ("What does E42 mean on the Cirrus R5 router?",), CIRRUS, "PPPoE"),
    C("first", "en", ("What is an AI gateway?",), ABOUT, "gateway de IA"),
    C("first", "pt", ("Qual é a garantia da máquina de lavar Brisa?",), BRISA, "inverter"),
    C("first", "pt", ("Como funciona a busca híbrida?",), RAG, "Hybrid search fuses"),
    C("first", "en", ("How do I reset the Cirrus R5 router?",), CIRRUS, "10 seconds"),
    C("first", "pt", ("O que significa E42 na máquina de lavar Brisa?",), BRISA, "roupa presa"),
]  # fmt: skip
