"""`alicerce`: the console script and `python -m alicerce`.

A command is a short process that imports a lot and frees almost none of it (modules, classes,
the schema live as long as it does), so the cyclic garbage collector, scanning those objects
again and again while they are made and all of them once more when the interpreter exits, was
a quarter of `alicerce accounts list`. It is paused until the command has imported what it needs
(`alicerce.cli.context.imported` resumes it for what the command does next: `serve` runs for
days), and at exit everything is frozen (`gc.freeze`) so that the last collections skip it.
"""

import gc


def run() -> None:
    gc.disable()  # before `alicerce.cli`: its imports (click, pydantic, the catalog) count too
    try:
        from alicerce.cli import main

        main()
    finally:
        gc.freeze()


if __name__ == "__main__":
    run()
