"""benchmarks/rift_headroom.py's verdict: with IL only alone (``--policies "IL only"``, e.g. to
train more stage-1 planners) it says no reference ran instead of "no separated room"."""

from tests.benchmark_modules import benchmark_module

UNIT = {"rp": 300.0, "cbv_rc": 50.0, "cbv_ds": 40.0, "stuck": 0.0, "collided": 50.0, "cpk": 9.0}


def _res(policies, seeds=(0, 1)):
    units = {f"dense|{p}|{s}": dict(UNIT, rp=UNIT["rp"] + 10 * s) for p in policies for s in seeds}
    args = {"seeds": len(seeds), "episodes": 3, "demo_episodes": 8, "epochs": 12}
    return {"units": units, "args": dict(args, policies=list(policies))}


def test_verdict_without_a_reference_says_none_ran():
    with benchmark_module("rift_headroom") as m:
        assert m.verdict("dense", _res(["IL only"]), [0, 1]) == (
            "no reference policy run (--policies)"
        )
        # with a reference equal to IL only: room is looked for, and none found
        res = _res(["IL only", "best return"])
        assert m.verdict("dense", res, [0, 1]) == "no separated room"
        res["units"]["dense|best return|0"]["cbv_ds"] += 20.0
        res["units"]["dense|best return|1"]["cbv_ds"] += 21.0
        assert m.verdict("dense", res, [0, 1]).startswith("room: best return cbv_ds +20.5")
