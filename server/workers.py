"""The model workers as the server sees them: started and warmed in the background after ``initialized``,
restarted when their settings change, and asked whether they are ready — so a feature can answer without a model
instead of waiting for one to load."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from engram_ls.inference import Inference, InferenceError, InferenceSettings

log = logging.getLogger("engram_ls.server")


class Models:
    def __init__(self, report_error: Callable[[str], None]):
        self._report_error = report_error
        self._inference: Inference | None = None
        self._task: asyncio.Task | None = None
        self._settings: InferenceSettings | None = None
        self.error: str | None = None
        self.warm = False  # both pools have generated once: weights paged in, first evaluation done

    def start(self, settings: InferenceSettings) -> None:
        """Starts and warms the workers in the background (once; ``restart`` applies new settings)."""
        if self._task is None:
            self._settings = settings
            self._task = asyncio.ensure_future(self._start(settings))

    async def _start(self, settings: InferenceSettings) -> Inference | None:
        inference = Inference(settings)
        try:
            await inference.start()
        except InferenceError as e:
            self.error = str(e)
            log.error("model workers unavailable: %s", e)
            self._report_error(f"model workers unavailable: {e}")
            return None
        self.error = None
        self._inference = inference
        asyncio.ensure_future(self._warm(inference))
        return inference

    async def _warm(self, inference: Inference) -> None:
        """One token from each pool, so the first real request does not pay for paging the weights in."""
        try:
            await asyncio.gather(inference.ask("Hello", [], role="research", max_tokens=1),
                                 inference.complete("def main():\n    ", "", [], max_tokens=1))
        except InferenceError as e:
            log.info("warming the model workers failed: %s", e)
        self.warm = inference is self._inference

    @property
    def ready(self) -> bool:
        """Started and warmed: a request now waits only for generation, not for a model to load."""
        return self._inference is not None and self.warm

    def busy(self, role: str) -> bool:
        """Every worker of the role is generating (a new request would queue)."""
        pool = self.status().get(role)
        return isinstance(pool, dict) and pool.get("alive", 0) > 0 and pool.get("busy", 0) >= pool.get("alive", 0)

    async def get(self, settings: InferenceSettings | None = None) -> Inference:
        """The started workers (starting them if needed); InferenceError when they cannot run."""
        if self._task is None:
            self.start(settings or InferenceSettings())
        inference = await asyncio.shield(self._task)
        if inference is None:
            raise InferenceError(self.error or "model workers unavailable", "model_error")
        return inference

    async def cancel(self, request_id: str) -> None:
        """Stops a request in its worker; nothing to do when the workers never started."""
        if self._inference is not None:
            await self._inference.cancel(request_id)

    async def restart(self, settings: InferenceSettings) -> None:
        if self._task is None or settings == self._settings:
            return
        old, self._task = self._task, None
        self._inference, self.warm = None, False
        inference = await old
        if inference is not None:
            await inference.close()
        self.start(settings)

    def status(self) -> dict:
        if self._inference is not None:
            return self._inference.status() | {"warm": self.warm}
        if self.error:
            return {"state": "unavailable", "error": self.error}
        return {"state": "starting" if self._task else "not started"}

    async def close(self) -> None:
        if self._task is not None:
            inference = await self._task
            if inference is not None:
                await inference.close()
