"""Build the LLM client, embedder and surprisal LM the pipeline needs (all from lm-kit / autointerp)."""

from __future__ import annotations

from pathlib import Path


def make_llm(
    target: str, model_name: str | None, cache_dir: Path, concurrency: int = 16, loaded=None
):
    """``target``: an OpenAI-compatible base URL (``http://host:port/v1``) or ``local:<spec>``
    (``local:smollm2``). ``loaded`` = (model, tok) reuses an already loaded local model."""
    from lm_kit.llm import make_client

    if target.startswith(("http://", "https://")):
        if not model_name:
            raise ValueError(
                f"--llm {target} needs --llm-model NAME (the model served at that endpoint)"
            )
        return make_client(
            target, model=model_name, cache_dir=cache_dir, max_concurrency=concurrency
        )
    if target.startswith("local:"):
        if loaded is not None:
            from lm_kit.llm import TransformersClient

            model, tok = loaded
            # a name with ":" breaks lm-kit's cache key (parsed as host:port), so pass the bare spec
            return TransformersClient(model, tok, name=target.split(":", 1)[1], cache_dir=cache_dir)
        return make_client(target, cache_dir=cache_dir)
    raise ValueError(
        f"--llm must be an http(s):// OpenAI-compatible URL or local:<model>, got {target!r}"
    )


def make_embedder():
    from autointerp.embed import MiniLMEmbedder

    return MiniLMEmbedder()


def make_steering(
    subject: str, sae_path: str | Path, site: str | None = None, judge: str | None = None
):
    """Steerer (subject model + the coder's decoder rows at its hookpoint) and the intervention
    judge LM (``judge``: an lm-kit model spec; default: a separate copy of the subject model, so
    steering hooks never touch a model that an LLM client is using)."""
    from autointerp.scorers.intervention import TransformersJudge
    from autointerp.steering import Steerer
    from lm_kit import load_model
    from sae_core import load

    sae = load(sae_path)
    hook = site or getattr(sae.cfg, "site", None)
    if not hook:
        raise ValueError(
            f"the coder at {sae_path} does not record its hookpoint; pass --site (e.g. resid_post.6)"
        )
    model, tok = load_model(subject)

    def encode(h):
        import torch

        with torch.no_grad():
            return sae.encode(h.to(sae.W_dec.dtype))

    steerer = Steerer(model, tok, hook, sae.W_dec.detach(), encode=encode, name=subject)
    jm, jt = load_model(judge or subject)
    instruct = "instruct" in str(judge or subject).lower() or (judge or subject) == "smollm2"
    return steerer, TransformersJudge(
        jm, jt, name=f"judge:{judge or subject}", instruct_model=instruct
    )
