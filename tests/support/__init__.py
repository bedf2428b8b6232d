"""What the tests share besides fixtures, grouped by concern; tests import it by name
(``from support.data import POSITIVE``): pyproject.toml puts tests/ on pytest's path.

    data      reviews, small run configs, data files in the formats critic reads
    bundles   editing and inspecting saved bundles
    servers   servers on loopback ports: a free port, and waiting until one answers
    aws       names and helpers of the tests that talk to moto's AWS
    bench     the benchmark scripts, loaded as modules

The fixtures stay in the conftest.py files; they use these modules.
"""
