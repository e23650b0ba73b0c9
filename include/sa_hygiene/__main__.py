from sa_hygiene.cli import run

run()
