"""Facts about the machine, and the floating-point mode training sets for itself."""

import torch

from critic.system import available_cores, subnormals_flushed


def subnormal_survives() -> bool:
    return float(torch.tensor([2.0**-1070], dtype=torch.float64) * 2) != 0.0


def test_subnormals_are_flushed_inside_the_block_and_kept_again_after_it():
    assert subnormal_survives()
    with subnormals_flushed(torch.device("cpu")):
        assert not subnormal_survives()
    assert subnormal_survives()  # whatever runs next in the process gets IEEE floats back


def test_a_block_that_raises_still_gives_the_mode_back():
    try:
        with subnormals_flushed(torch.device("cpu")):
            raise RuntimeError("stopped")
    except RuntimeError:
        pass
    assert subnormal_survives()


def test_the_process_may_use_at_least_one_core():
    assert available_cores() >= 1
