"""Hook overhead on SmolLM2-135M-Instruct: forward with a capture hook vs a plain forward.

Both variants run side by side in the same process, interleaved (plain, capture, plain, ...),
and the ratio of the medians is reported. Also: 4 captured sites, early stop at layer 6 of 30
(vs the bare base-model forward and vs the CausalLM with head), and the cached GGUF reload time.

    uv run python benchmarks/hook_overhead.py [--repeats 15] [--tokens 64] [--batch 1]

Each variant is timed by the CPU time of this process (``time.process_time``) with torch on
``--threads`` threads (default 1), which is far less sensitive to other jobs on a shared machine
than wall time; wall-clock medians are printed too. Read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from lm_kit.hooks import capture, run
from lm_kit.loading import load_model


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - t0


def interleaved(
    variants: dict[str, Callable[[], object]], repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median (CPU s, wall s) per variant; variants alternate in every repeat (after a warm-up)."""
    for fn in variants.values():
        fn()
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(repeats):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for k in order:
            c, w = _time(variants[k])
            cpu[k].append(c)
            wall[k].append(w)
    med = statistics.median
    return {k: med(v) for k, v in cpu.items()}, {k: med(v) for k, v in wall.items()}


def hook_seconds(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, sites: list[str]
) -> float:
    """Median seconds spent inside lm-kit's capture hooks during one forward (wrapping _store)."""
    spent: list[float] = []
    ctx = capture(model, sites, stop_at=None)
    real_store = ctx._store

    def timed_store(site, t):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        real_store(site, t)
        spent.append(time.perf_counter() - t0)

    ctx._store = timed_store  # type: ignore[method-assign]
    per_forward = []
    with ctx, torch.no_grad():
        for _ in range(5):
            spent.clear()
            model(input_ids=ids, attention_mask=mask, use_cache=False)
            per_forward.append(sum(spent))
    return statistics.median(per_forward)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument(
        "--early-stop-layer", type=int, default=5, help="resid_post.L (5 = layer 6 of 30)"
    )
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    load_model("smollm2")  # make sure the GGUF cache is warm before timing a reload
    t0 = time.perf_counter()
    model, tok = load_model("smollm2")
    reload_s = time.perf_counter() - t0
    base = model.model
    ids = torch.randint(100, 40_000, (args.batch, args.tokens))
    mask = torch.ones_like(ids)
    n_tok = ids.numel()

    def plain() -> None:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, use_cache=False)

    def one_site() -> None:
        with capture(model, "resid_post.14", stop_at=None), torch.no_grad():
            model(input_ids=ids, attention_mask=mask, use_cache=False)

    four = ["resid_post.5", "mlp_out.14", "attn_out.20", "resid_post.28"]

    def four_sites() -> None:
        with capture(model, four, stop_at=None), torch.no_grad():
            model(input_ids=ids, attention_mask=mask, use_cache=False)

    def base_plain() -> None:
        with torch.no_grad():
            base(input_ids=ids, attention_mask=mask, use_cache=False)

    def early() -> None:
        with capture(base, f"resid_post.{args.early_stop_layer}"):
            out = run(base, input_ids=ids, attention_mask=mask)
        assert out is None

    print(
        f"SmolLM2-135M-Instruct fp32 CPU, batch {args.batch}x{args.tokens}, {args.repeats} interleaved repeats"
    )
    print(
        f"torch threads: {torch.get_num_threads()}; medians of per-process CPU time and of wall time"
    )
    med, wall = interleaved(
        {"plain": plain, "capture": one_site, "capture4": four_sites}, args.repeats
    )
    es, es_wall = interleaved(
        {"causal_lm": plain, "base": base_plain, "early": early}, max(5, args.repeats // 2)
    )
    print(f"{'variant':<22}{'CPU s':>9}{'wall s':>9}{'tok/s':>9}")
    rows = [
        *[(k, v, wall[k]) for k, v in med.items()],
        *[(f"{k} [es]", v, es_wall[k]) for k, v in es.items()],
    ]
    for name, c, w in rows:
        print(f"{name:<22}{c:>9.4f}{w:>9.4f}{n_tok / c:>9.0f}")
    print(f"wall-clock ratio capture/plain: {wall['capture'] / wall['plain']:.3f}")
    # noise-free view: time spent inside the capture hooks themselves, per forward
    hook_s = hook_seconds(model, ids, mask, four)
    print(f"time inside 4 capture hooks per forward: {hook_s * 1e3:.3f} ms")
    print(f"ratio capture4/plain by hook-time accounting: {1 + hook_s / med['plain']:.4f}")
    print(f"gguf cached reload s: {reload_s:.2f}")
    print(f"early stop speedup vs base model: {es['base'] / es['early']:.2f}")
    print(f"early stop speedup vs causal lm: {es['causal_lm'] / es['early']:.2f}")
    print(f"ratio capture4/plain: {med['capture4'] / med['plain']:.3f}")
    print(f"ratio capture/plain: {med['capture'] / med['plain']:.3f}")


if __name__ == "__main__":
    main()
