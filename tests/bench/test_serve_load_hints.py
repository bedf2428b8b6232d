"""bench/serve_load.py's autoscaling hint: the best single-review rate of each bundle, and the
target AWS's guidance makes of it."""

from support.bench import load_bench_script


def test_the_hint_takes_each_bundles_best_single_review_rate_and_suggests_its_target():
    rows = [
        {"bundle": "runs/lstm", "request": "single", "critic_requests_per_second": 120.0},
        {"bundle": "runs/lstm", "request": "single", "critic_requests_per_second": 300.0},
        {"bundle": "runs/lstm", "request": "hundred", "critic_requests_per_second": 900.0},
        {"bundle": "runs/nbsvm", "request": "single", "critic_requests_per_second": 40.0},
    ]
    assert load_bench_script("serve_load").scaling_hints(rows) == [
        "lstm: one instance answered at most 300 requests/s; suggested --target-invocations "
        "9,000 (x 0.5 safety x 60 s)",
        "nbsvm: one instance answered at most 40 requests/s; suggested --target-invocations "
        "1,200 (x 0.5 safety x 60 s)",
    ]
