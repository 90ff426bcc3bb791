"""Small matplotlib charts for timings and stream timelines."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence


def _figure(ax, size=(6.5, 3.2)):
    import matplotlib

    if ax is not None:
        return ax.figure, ax
    if not _in_kernel():
        matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def show(fig):
    """Display a figure once in Jupyter as a PNG image (no pyplot or %matplotlib needed)."""
    if _in_kernel():
        import io

        from IPython.display import Image, display

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        display(Image(data=buffer.getvalue(), format="png"))
    return fig


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str = "", ax=None,
              unit: str = "s"):
    fig, ax = _figure(ax, size=(6.5, 0.9 + 0.6 * len(labels)))
    palette = ["#76b900", "#5a5a5a", "#1f77b4", "#ff7f0e"]
    bars = ax.barh(list(labels), list(values), color=palette[: len(labels)])
    ax.bar_label(bars, labels=[f"{v:.2f} {unit}" for v in values], padding=3)
    ax.invert_yaxis()
    ax.set_xlabel(f"wall time ({unit})")
    ax.set_xlim(0, max(values) * 1.25 if values else 1)
    ax.set_title(textwrap.fill(title, 80), fontsize=9)
    return fig


def line_chart(xs: Sequence, ys: Sequence[float], xlabel: str, ylabel: str, title: str = "",
               ax=None):
    fig, ax = _figure(ax)
    ax.plot(list(xs), list(ys), marker="o", color="#76b900")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return fig


def timeline_chart(result, title: str | None = None, ax=None):
    """Characters received over time for a StreamResult, with first token and end marked."""
    fig, ax = _figure(ax)
    ax.step(result.arrivals_s, result.characters_received(), where="post", color="#76b900",
            label="characters received")
    if result.ttft_s is not None:
        ax.axvline(result.ttft_s, color="#1f77b4", ls="--",
                   label=f"first token {result.ttft_s:.2f} s")
    ax.axvline(result.total_s, color="#5a5a5a", ls=":", label=f"complete {result.total_s:.2f} s")
    ax.set_xlabel("seconds since the request")
    ax.set_ylabel("characters")
    ax.set_xlim(left=0)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or "When each chunk arrived", fontsize=9)
    return fig


def plot_timeline(result, title: str | None = None, ax=None):
    """Show (and return) the chunk-arrival timeline of a StreamResult."""
    return show(timeline_chart(result, title=title, ax=ax))
