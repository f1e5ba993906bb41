"""The judge on a Ray cluster (`JudgeConfig(executor="ray")`): batches of programs go to Ray actors,
each of which runs an ordinary sandboxed `Judge` (pool.py) on its node and returns the verdicts.

Roles: the driver (`RayPool`, inside the user's `Judge`) cuts the tasks into batches, keeps every
actor busy (two batches in flight each, so an actor never waits for the driver), hands each result
to `on_result` as its batch comes back, and puts the results in input order. `JudgeActor` is the
judge process of one node: it compares outputs there, exactly as the local judge does.

What travels, driver -> actor: the batch's `JudgeTask`s (program code, which tests, early exit,
and the `Problem` with its tests: inputs *and* expected outputs, since the actor is the judge
process that compares) and, for HumanEval+/MBPP+ and calibrated problems, the reference outputs and
times the driver already holds (derived once per problem on some actor, then sent with every
batch that needs them, so every actor judges with the same expected values and limits). Actor ->
driver: `ProgramResult` records. As locally, only program code and test inputs ever enter a
sandboxed worker: expected outputs stay in the actor's judge process.

Invariants: the verdicts equal the local judge's (the actor *is* a local judge); an actor that dies
(its node lost, `ray.kill`) loses nothing: its unfinished batches go to the other actors and a
replacement actor is started; a batch that has killed `MAX_ATTEMPTS` actors is an error, not a
silent verdict. `ray` is imported here at the top: this module itself is imported only when the
executor is `ray` (the optional extra `codeplan[ray]`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from codeplan.errors import SetupError
from codeplan.judge.calibrate import References
from codeplan.judge.config import JudgeConfig
from codeplan.judge.pool import Judge, JudgeTask, ProgramResult
from codeplan.problems import Problem

IN_FLIGHT = 2  # batches queued per actor: the next one is there when the current one ends
MAX_ATTEMPTS = 3  # a batch is tried on this many actors before the run fails
READY_TIMEOUT = 300.0  # seconds for an actor to start its judge (bubblewrap, seccomp, the probe program)


class JudgeActor:
    """One node's judge: a local sandboxed `Judge` with `workers` processes, started once."""

    def __init__(self, cfg: dict) -> None:
        self.judge = Judge(JudgeConfig(**cfg))
        self.judge.start()  # a node that cannot sandbox fails here, with the local judge's SetupError

    def ready(self) -> str:
        return ray.util.get_node_ip_address()

    def judge_batch(self, tasks: list[JudgeTask], references: dict[str, Any]) -> list[dict]:
        self._learn(tasks, references)
        return [result.to_record() for result in self.judge.run(tasks)]

    def derive(self, problems: list[Problem]) -> list[tuple[list[Any], float] | float]:
        """Reference outputs (HumanEval+/MBPP+) or times (calibration) of `problems`, as pool.py
        computes them locally."""
        self.judge.prepare_references([JudgeTask(problem=problem, code="") for problem in problems])
        refs = self.judge.references
        return [refs.outputs(p) if p.outputs_from_solution else refs.time(p) for p in problems]

    def _learn(self, tasks: list[JudgeTask], references: dict[str, Any]) -> None:
        refs = self.judge.references
        for task in tasks:
            known = references.get(refs.key(task.problem))
            if known is None:
                continue
            if task.problem.outputs_from_solution:
                refs.set_outputs(task.problem, *known)
            else:
                refs.set_time(task.problem, known)

    def close(self) -> None:
        self.judge.close()


class RayPool:
    """The driver's side: actors on the cluster, batches out, verdicts back in input order."""

    def __init__(self, cfg: JudgeConfig) -> None:
        self.cfg = cfg
        self.started_ray = False
        if not ray.is_initialized():
            # address None: RAY_ADDRESS or a running local cluster, else a new one on this machine.
            ray.init(address=cfg.ray_address, include_dashboard=False, log_to_driver=False)
            self.started_ray = True
        self.per_actor = max(1, cfg.workers or 1)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.size = cfg.ray_actors or max(1, cpus // self.per_actor)
        self._actor_class = ray.remote(num_cpus=self.per_actor, max_restarts=0)(JudgeActor)
        self._actor_cfg = cfg.model_dump() | {"executor": "local", "workers": self.per_actor}
        self.actors: list[Any] = []
        self.retried = 0  # batches sent again after their actor died
        self.interrupted = False  # a run stopped with batches still queued on the actors
        try:
            self.actors = [self._new_actor() for _ in range(self.size)]
            self._wait_ready(self.actors)
        except BaseException:
            self.close()
            raise

    def _new_actor(self) -> Any:
        return self._actor_class.remote(self._actor_cfg)

    def _wait_ready(self, actors: list[Any]) -> None:
        try:
            ray.get([actor.ready.remote() for actor in actors], timeout=READY_TIMEOUT)
        except (RayActorError, RayTaskError) as err:
            raise SetupError(f"a Ray judge actor could not start its sandboxed judge: {_cause(err)}") from None
        except GetTimeoutError:
            raise SetupError(f"the Ray judge actors did not start within {READY_TIMEOUT:.0f} s: does the cluster "
                             f"have {self.size} x {self.per_actor} CPUs free (ray_actors, workers)?") from None

    def close(self) -> None:
        # Idle actors close their judges (workers and scratch directories) first. After an
        # interrupted run their queues still hold batches, which `close` would wait behind: they
        # are killed at once (their sandboxed workers die with them: --die-with-parent).
        if not self.interrupted:
            try:
                ray.get([actor.close.remote() for actor in self.actors], timeout=30)
            except Exception:  # noqa: BLE001 - dead or stuck actors: killed below
                pass
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False

    # ------------------------------------------------------------------ reference solutions
    def prepare_references(self, references: References, to_derive: list[Problem], to_time: list[Problem]) -> None:
        """Derive what the local judge would (pool.py `prepare_references`), spread over the actors."""
        problems = to_derive + to_time
        if not problems:
            return
        chunks = [problems[i::len(self.actors)] for i in range(len(self.actors))]
        answers = self._dispatch([chunk for chunk in chunks if chunk], lambda actor, chunk: actor.derive.remote(chunk),
                                 on_batch=None)
        for chunk, values in answers:
            for problem, value in zip(chunk, values):
                if problem.outputs_from_solution:
                    references.set_outputs(problem, *value)
                else:
                    references.set_time(problem, value)

    # ------------------------------------------------------------------ programs
    def run(self, tasks: Sequence[JudgeTask], references: References,
            on_result: Callable[[int, ProgramResult], None] | None = None) -> list[ProgramResult]:
        size = max(1, self.cfg.ray_batch)
        batches = [list(range(start, min(start + size, len(tasks)))) for start in range(0, len(tasks), size)]
        results: list[ProgramResult | None] = [None] * len(tasks)

        def submit(actor: Any, batch: list[int]) -> Any:
            chunk = [tasks[i] for i in batch]
            return actor.judge_batch.remote(chunk, _known(references, chunk))

        def done(batch: list[int], records: list[dict]) -> None:
            for index, record in zip(batch, records):
                results[index] = ProgramResult(**record)
                if on_result is not None:
                    on_result(index, results[index])

        self._dispatch(batches, submit, on_batch=done)
        return results  # type: ignore[return-value] - every batch came back

    def _dispatch(self, batches: list, submit: Callable[[Any, Any], Any],
                  on_batch: Callable[[Any, Any], None] | None) -> list[tuple[Any, Any]]:
        """Run every batch on some actor, at most IN_FLIGHT per actor; a batch whose actor died goes
        to another (a replacement actor is started for the dead one). Returns (batch, answer) pairs
        in completion order, and calls `on_batch` for each as it comes."""
        waiting = deque((batch, 0) for batch in batches)
        running: dict[Any, tuple[Any, Any, int]] = {}  # future -> (actor, batch, attempt)
        load = {id(actor): 0 for actor in self.actors}
        answers: list[tuple[Any, Any]] = []
        try:
            self._drain(waiting, running, load, answers, submit, on_batch)
        finally:
            self.interrupted = self.interrupted or bool(running)
        return answers

    def _drain(self, waiting: deque, running: dict, load: dict[int, int], answers: list,
               submit: Callable[[Any, Any], Any], on_batch: Callable[[Any, Any], None] | None) -> None:
        while waiting or running:
            for actor in list(self.actors):
                while waiting and load.get(id(actor), 0) < IN_FLIGHT:
                    batch, attempt = waiting.popleft()
                    running[submit(actor, batch)] = (actor, batch, attempt)
                    load[id(actor)] = load.get(id(actor), 0) + 1
            ready, _ = ray.wait(list(running), num_returns=1)
            future = ready[0]
            actor, batch, attempt = running.pop(future)
            if id(actor) in load:  # (a replaced actor's other batches come back failed too)
                load[id(actor)] -= 1
            try:
                answer = ray.get(future)
            except RayActorError as err:
                if attempt + 1 >= MAX_ATTEMPTS:
                    raise RuntimeError(f"a batch of the judge failed on {MAX_ATTEMPTS} Ray actors in turn: {_cause(err)}") from None
                self.retried += 1
                waiting.appendleft((batch, attempt + 1))
                self._replace(actor, load)
                continue
            except RayTaskError as err:  # an error inside the judge itself (e.g. SetupError): not retried
                cause = _cause(err)
                raise (cause if isinstance(cause, BaseException) else RuntimeError(cause)) from None
            answers.append((batch, answer))
            if on_batch is not None:
                on_batch(batch, answer)

    def _replace(self, dead: Any, load: dict[int, int]) -> None:
        """Drop a dead actor and start another in its place (Ray puts it wherever CPUs are free)."""
        if dead not in self.actors:
            return  # already replaced (several of its batches failed)
        self.actors.remove(dead)
        load.pop(id(dead), None)
        fresh = self._new_actor()
        self.actors.append(fresh)
        load[id(fresh)] = 0


def _known(references: References, tasks: list[JudgeTask]) -> dict[str, Any]:
    """The reference outputs / times the driver holds for the batch's problems, by reference key."""
    known: dict[str, Any] = {}
    for task in tasks:
        problem = task.problem
        key = references.key(problem)
        if key in known:
            continue
        if problem.outputs_from_solution:
            value = references.outputs(problem)
        else:
            value = references.time(problem) if references.calibrated(problem) else None
        if value is not None:
            known[key] = value
    return known


def _cause(err: Exception) -> BaseException | str:
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
