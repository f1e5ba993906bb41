"""Plan sampling as a service: POST /v1/codeplan/solve on the `codeplan serve` app (tiny model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow


def test_solve_route_returns_code_and_the_chosen_plan(tiny_causal_lm: Path):
    from codeplan.llm.hf import HFGenerator
    from codeplan.serve import create_app

    app = create_app(HFGenerator(str(tiny_causal_lm), batch_size=8), "tiny")
    body = {"statement": "Read two integers and print their sum.", "num_plans": 2, "codes_per_plan": 2,
            "public_tests": [{"input": "1 2\n", "output": "3\n"}], "plan_max_tokens": 8, "code_max_tokens": 8,
            "return_plan": True}
    with TestClient(app) as client:
        answer = client.post("/v1/codeplan/solve", json=body).json()
        assert isinstance(answer["code"], str) and answer["model"] == "tiny"
        assert answer["plan"] == answer["plans"][answer["plan_index"]] and len(answer["plans"]) == 2
        scores = answer["selection"]["scores"]
        assert [s["programs"] for s in scores] == [2, 2]  # every plan's programs ran on the example test
        assert answer["budget"]["programs_judged"] == 4 and answer["budget"]["model_calls"] == 1 + 2 + 1
        # Same request, same seed: same answer. Without return_plan the plan stays private.
        short = client.post("/v1/codeplan/solve", json={**body, "return_plan": False}).json()
        assert short["code"] == answer["code"] and "plan" not in short and "selection" not in short
        direct = client.post("/v1/codeplan/solve", json={**body, "strategy": "direct"}).json()
        assert direct["budget"]["model_calls"] == 1 and "plan" not in direct
        bad = client.post("/v1/codeplan/solve", json={"statement": ""})
        assert bad.status_code in (400, 422)
