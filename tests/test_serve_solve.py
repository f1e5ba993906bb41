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
        rerank = client.post("/v1/codeplan/solve", json={**body, "strategy": "direct-rerank", "budget": 3}).json()
        assert rerank["budget"]["programs"] == 3 and rerank["budget"]["programs_judged"] == 3
        unbalanced = client.post("/v1/codeplan/solve", json={**body, "budget": 7})  # 2 x 2 + 1 programs, not 7
        assert unbalanced.status_code == 400 and "not the budget 7" in unbalanced.json()["detail"]


def test_generate_through_an_openai_compatible_server(tiny_causal_lm: Path, tmp_path: Path):
    """`--model openai:URL --model-name NAME`: plan sampling against `codeplan serve` over HTTP."""
    import json

    from codeplan.config import DataConfig
    from codeplan.llm.hf import HFGenerator
    from codeplan.generate import GenerateConfig, generate
    from codeplan.serve import background_server, create_app

    app = create_app(HFGenerator(str(tiny_causal_lm), batch_size=8), "tiny-student")
    with background_server(app) as url:
        out = tmp_path / "samples.jsonl"
        summary = generate(GenerateConfig(
            data=DataConfig(path="sample", split="test", limit=2), model=f"openai:{url}", model_name="tiny-student",
            out=str(out), strategy="plan-sampling", num_plans=2, codes_per_plan=1, num_samples=2, plan_max_tokens=8,
            code_max_tokens=8, progress=False))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["problems"] == 2 and len(rows) == 4
    assert all(len(r["selection"]["scores"]) == 2 for r in rows)
    # Plan log-probabilities come back over HTTP too, so likelihood can break ties.
    assert all(s["logprob"] is not None and s["logprob"] < 0 for r in rows for s in r["selection"]["scores"])
    assert summary["budget"]["completion_tokens"] > 0  # usage comes back from the server


class _Recorder:
    """A stand-in model that answers every prompt with the same program and notes how it was asked."""

    name = "recorder"

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def _answer(self, count: int, params) -> list:
        from codeplan.llm import Completion

        return [Completion(texts=["```python\nprint(sum(map(int, input().split())))\n```"] * params.n,
                           completion_tokens=params.n) for _ in range(count)]

    def generate(self, prompts: list[str], params) -> list:
        self.kinds += ["completion"] * len(prompts)
        return self._answer(len(prompts), params)

    def chat(self, conversations: list, params) -> list:
        assert all(c[0]["role"] == "user" and "sum" in c[0]["content"] for c in conversations)
        self.kinds += ["chat"] * len(conversations)
        return self._answer(len(conversations), params)


@pytest.mark.parametrize("chat_template", [True, False])
def test_solve_asks_the_student_the_way_it_was_trained(chat_template: bool) -> None:
    from codeplan.serve import create_app

    model = _Recorder()
    body = {"statement": "Read two integers and print their sum.", "strategy": "direct"}
    with TestClient(create_app(model, "m", chat_template=chat_template)) as client:
        answer = client.post("/v1/codeplan/solve", json=body).json()
    assert "print(sum(" in answer["code"]
    assert model.kinds == ["chat" if chat_template else "completion"]
