"""A tqdm progress bar on a management command's stderr, drawn only when that is a terminal."""

from typing import Self

from tqdm import tqdm


class ProgressBar:
    def __init__(self, stderr, *, unit: str = "B", description: str = ""):
        self._stream = _BarStream(stderr)
        self._unit = unit
        self._description = description
        self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.close()

    def start(self, total: int | None) -> None:
        if self._bar is None:
            scale = self._unit == "B"
            self._bar = tqdm(total=total, unit=self._unit, unit_scale=scale, unit_divisor=1024 if scale else 1000,
                             desc=self._description or None, file=self._stream, disable=None, dynamic_ncols=True)

    def advance(self, count: int, total: int | None = None) -> None:
        self.start(total)
        self._bar.update(count)


class _BarStream:
    """A file for tqdm over Django's OutputWrapper, which would end each of tqdm's writes with a newline."""

    def __init__(self, wrapper):
        self._wrapper = wrapper

    def write(self, text: str) -> None:
        self._wrapper.write(text, style_func=str, ending="")

    def flush(self) -> None:
        self._wrapper.flush()

    def isatty(self) -> bool:
        return self._wrapper.isatty()
