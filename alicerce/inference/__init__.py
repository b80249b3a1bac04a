"""Inference: from an OpenAI chat request to an answer, through a gateway's plan and upstream."""
