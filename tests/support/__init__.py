"""What the tests share besides fixtures, grouped by concern; tests import it by name
(``from support.data import POSITIVE``): pyproject.toml puts tests/ on pytest's path.

    data      reviews, small run configs, data files in the formats critic reads
    bundles   editing and inspecting saved bundles
    cli       the ``critic`` command as a process: CLI, run_cli, start_cli
    servers   a real ``critic serve`` (or ``critic web``) on a loopback port: running_server
    aws       names and helpers of the tests that talk to moto's AWS
    bench     the benchmark scripts, loaded as modules
    browser   the chromium the page's browser tests drive, and what they do on the page
    feedback  votes written straight into a feedback file

The fixtures stay in the conftest.py files; they use these modules.
"""
