"""A self-contained HTML report: headings, tables and matplotlib figures (embedded as PNG),
written atomically so a killed run never leaves a half-written file."""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class Report:
    title: str
    blocks: list[str] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str) -> None:
        self.blocks.append(f"<p>{html.escape(text)}</p>")

    def table(self, df: pd.DataFrame, caption: str = "", digits: int = 3) -> None:
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        body = df.to_html(float_format=lambda v: f"{v:.{digits}f}", border=0)
        self.blocks.append(body.replace("<thead>", cap + "<thead>", 1))

    def figure(self, fig: Any, caption: str = "", save_as: Path | None = None) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        if save_as is not None:
            _atomic_bytes(Path(save_as), buf.getvalue())
        data = base64.b64encode(buf.getvalue()).decode()
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.blocks.append(f'<figure><img src="data:image/png;base64,{data}"/>{cap}</figure>')

    def to_html(self) -> str:
        style = (
            "body{font-family:sans-serif;max-width:1000px;margin:2em auto;line-height:1.4}"
            "table{border-collapse:collapse;margin:1em 0}td,th{padding:3px 8px;"
            "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}"
            "caption{caption-side:top;text-align:left;font-style:italic}"
        )
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>"
            + "\n".join(self.blocks)
            + "</body></html>"
        )

    def write(self, path: Path) -> Path:
        _atomic_bytes(Path(path), self.to_html().encode())
        return Path(path)


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is for reading
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
