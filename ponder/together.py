"""Several problems at once: each problem's strategy runs in its own thread, unchanged, and
their model calls are served together, so one forward pass decodes the rows of many problems.

Strategies make a few small calls each (2 to 8 rows for a search step); a CPU or GPU does
nearly the same work per pass for a few rows as for dozens. Every call a strategy makes goes
through a `Hub`. CPU-side calls that need no model (answer comparisons, the scores of a
verifier that declares `needs_model = False`) are served at once in the main thread, as they
come: they never wait for, or hold up, a batch (they used to go through the batch queue, so a
problem grouping its answers made one comparison per generate call of the others, and batches
shrank to a few problems' rows). When every running problem is waiting on a model call, the hub
serves all the pending `generate` calls in one `generate_many` (each still paying from its own
problem's budget and drawing from its own seed) and the other model calls (scores, model-based
verifiers) one by one, in the problems' order. Which calls share a batch does not depend on
thread timing (each problem's side calls are done before it waits on its next model call), so a
run is reproducible; a problem spends and draws what it would
alone, up to float rounding in the batched passes. Its `seconds` are wall time while sharing
the machine. If a merged `generate_many` raises, its calls are served again one by one, so only
the problem whose request fails gets the error (the others pay for the lost attempt's work too).
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator

from ponder.budget import Budget
from ponder.types import Result


class _Call:
    def __init__(self, slot: int, target, method: str, args: tuple):
        self.slot, self.target, self.method, self.args = slot, target, method, args
        self.done = threading.Event()
        self.value = self.error = None


class _Cancelled(BaseException):
    """Raised in a problem's thread when the run stops before that problem finished."""


class _Served:
    """What a strategy holds instead of the model or verifier: `methods` go through the hub,
    anything else (tokenizer, chat, answer extraction) is read from the object itself."""

    def __init__(self, hub: "Hub", slot: int, target, methods: tuple[str, ...]):
        self._hub, self._slot, self._target, self._methods = hub, slot, target, methods

    def __getattr__(self, name):
        if name in self._methods and hasattr(self._target, name):
            return lambda *args: self._hub.call(_Call(self._slot, self._target, name, args))
        return getattr(self._target, name)


class Hub:
    # same_answer too: math-verify times out by signal, which works in the main thread only
    SERVED = {"model": ("generate", "score"), "verifier": ("score", "step_scores", "same_answer")}

    def __init__(self, model, verifier):
        self.model, self.verifier = model, verifier
        self.cond = threading.Condition()
        self.pending: list[_Call] = []  # model calls, served together when every running problem waits on one
        self.side: list[_Call] = []  # calls that need no model, served at once
        self.running: set[int] = set()  # problems whose threads have not finished
        self.finished: list[tuple[int, object]] = []  # (slot, Result or the exception it raised)
        self.stopping = False

    def call(self, call: _Call):
        with self.cond:
            if self.stopping:
                raise _Cancelled()
            (self.side if self.is_side(call) else self.pending).append(call)
            self.cond.notify_all()
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.value

    def start(self, slot: int, work: Callable) -> None:
        """Run `work(model, verifier)` for problem `slot` in a thread of its own."""
        model = _Served(self, slot, self.model, self.SERVED["model"])
        verifier = _Served(self, slot, self.verifier, self.SERVED["verifier"]) if self.verifier is not None else None

        def body():
            try:
                outcome = work(model, verifier)
            except _Cancelled:
                return
            except BaseException as e:  # handed to the caller, who decides what a failure means
                outcome = e
            with self.cond:
                self.finished.append((slot, outcome))
                self.running.discard(slot)
                self.cond.notify_all()

        with self.cond:
            self.running.add(slot)
        threading.Thread(target=body, daemon=True, name=f"ponder-problem-{slot}").start()

    def is_side(self, call: _Call) -> bool:
        """A call that needs no model: answer comparisons, and the scores of a verifier that
        declares `needs_model = False` (a verifier that does not say is taken to need one)."""
        if call.target is not self.verifier:
            return False
        return call.method == "same_answer" or not self.verifier.needs_model

    def step(self) -> list[tuple[int, object]]:
        """Serve side calls as they come until every running problem waits on a model call or
        has finished; serve those calls; return the problems that finished since the last step."""
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.side or len(self.pending) == len(self.running))
                side, self.side = self.side, []
                if not side:
                    calls, self.pending = sorted(self.pending, key=lambda c: c.slot), []
                    finished, self.finished = sorted(self.finished, key=lambda f: f[0]), []
                    break
            for c in side:  # in the main thread: math-verify's timeout is a signal
                self.answer(c)
        self.serve(calls)
        return finished

    @staticmethod
    def answer(c: _Call) -> None:
        try:
            c.value = getattr(c.target, c.method)(*c.args)
        except Exception as e:
            c.error = e
        c.done.set()

    def serve(self, calls: list[_Call]) -> None:
        generate = [c for c in calls if c.target is self.model and c.method == "generate"]
        if len(generate) > 1:
            try:
                values = self.model.generate_many([c.args for c in generate])
            except Exception:  # one bad request must not fail the others: each is served alone below
                pass
            else:
                for c, value in zip(generate, values):
                    c.value = value
                    c.done.set()
                calls = [c for c in calls if c not in generate]
        for c in calls:
            self.answer(c)

    def busy(self) -> bool:
        """Problems still running, or finished and not yet handed back by `step`. (A thread
        ends between steps: checking `running` alone would lose the results of the last ones.)"""
        with self.cond:
            return bool(self.running or self.finished)

    def stop(self) -> None:
        """Release every waiting problem thread (each ends with _Cancelled)."""
        with self.cond:
            self.stopping = True
            calls, self.pending, self.side = self.pending + self.side, [], []
        for c in calls:
            c.error = _Cancelled()
            c.done.set()


def run_together(
    model, verifier, strategy, prompts: list[str], budget_for: Callable[[int], Budget], together: int
) -> Iterator[tuple[int, Result | BaseException]]:
    """`strategy.run` on every prompt, up to `together` at a time, prompt i under the budget
    `budget_for(i)` (made in this thread when the problem starts); yields (i, its Result) as each
    problem finishes, or (i, the exception its strategy raised)."""
    hub = Hub(model, verifier)
    todo = list(range(len(prompts)))[::-1]
    try:
        while todo or hub.busy():
            while todo and len(hub.running) < together:
                i = todo.pop()
                try:
                    budget = budget_for(i)
                except Exception as e:  # this prompt cannot start (wrong type, too long): the rest go on
                    yield i, e
                    continue
                hub.start(i, lambda m, v, i=i, budget=budget: strategy.run(m, prompts[i], v, budget.start()))
            yield from hub.step()
    finally:
        hub.stop()
