"""A deterministic scorer backend for tests and benchmarks: the *lexicon oracle*.

``OracleClient`` implements lm-kit's ``LLMClient`` (via ``BaseLLMClient``). It reads the prompts
this package writes and answers from the wordlists an explanation names (``synthetic.lexicon``):
a perfect judge of explanations of planted latents, and an explainer that names the majority
word class of the highlighted tokens. It returns 0/1 and 0..10 logprobs, counts prompt tokens with
a pluggable tokenizer, and can inject faults (garbage, wrong answer counts, missing logprobs,
exceptions such as lm-kit's ``RateLimited``/``LLMTimeoutError``).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable

from lm_kit.llm import BaseLLMClient, Completion, GenParams, Message, TokenLogprob

from autointerp.synthetic import WORDLISTS, class_explanation, classify_words, lexicon

_EX_RE = re.compile(r"^Example (\d+): (.*)$", re.MULTILINE)
_HL_RE = re.compile(r"<<(.*?)>>")
_WORD_RE = re.compile(r"[A-Za-z]+")


def approx_tokens(text: str) -> int:
    """Word and punctuation pieces (a stand-in when no tokenizer is given)."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD_RE.findall(text)]


class OracleClient(BaseLLMClient):
    def __init__(
        self,
        mode: str = "oracle",
        count_tokens: Callable[[str], int] = approx_tokens,
        logprobs: bool = True,
        model: str = "oracle",
        fail_every: int = 0,
        exception: Callable[[], Exception] | None = None,
        latency_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.count_tokens = count_tokens
        self.give_logprobs = logprobs
        self.model = model
        self.fail_every = fail_every
        self.exception = exception
        self.latency_s = latency_s
        self.requests: list[list[Message]] = []
        self.n_calls = 0

    async def aclose(self) -> None:
        return None

    async def _complete(self, prompt: str, params: GenParams) -> Completion:
        return await self._chat([Message.user(prompt)], params, None)

    async def _chat(
        self, messages: list[Message], params: GenParams, json_mode: str | None = None
    ) -> Completion:
        self.n_calls += 1
        self.requests.append(list(messages))
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.exception is not None and (
            not self.fail_every or self.n_calls % self.fail_every == 0
        ):
            self.usage.record(self.model, failed=True)
            raise self.exception()
        system = messages[0].content if messages[0].role == "system" else ""
        user = messages[-1].content
        if self.mode == "garbage":
            text, lps = "lorem ipsum {{{ ]] no answer here", None
        elif "[EXPLANATION]" in system:
            text, lps = self._explain(user, params), None
        elif "neuron's activation" in system:
            text, lps = self._simulate(user)
        elif "[RESPONSE]" in system:
            text, lps = self._intruder(user), None
        else:
            text, lps = self._classify(user, fuzzing="<<" in system)
        if self.mode == "wrong_length" and text.startswith("["):
            vals = json.loads(text)
            text, lps = json.dumps(vals[:-1]), None
        if not (params.logprobs and self.give_logprobs):
            lps = None
        prompt = "\n".join(m.content for m in messages)
        pt = self.count_tokens(prompt) + 4 * len(messages)
        c = Completion(
            text=text,
            finish_reason="stop",
            logprobs=lps,
            prompt_tokens=pt,
            completion_tokens=self.count_tokens(text),
            model=self.model,
        )
        self.usage.record(
            self.model, prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens
        )
        return c

    # ---- tasks ------------------------------------------------------------------------------
    def _explain(self, user: str, params: GenParams) -> str:
        marked = [w for run in _HL_RE.findall(user) for w in _words(run)]
        counts = classify_words(marked)
        if not counts:
            return "I could not find a pattern.\n[EXPLANATION]: " + (
                "various words"
                if not marked
                else "the words " + ", ".join(f'"{w}"' for w in sorted(set(marked))[:5])
            )
        total = sum(counts.values())
        top = sorted(counts, key=lambda c: (-counts[c], c))
        chosen = tuple(c for c in top if counts[c] >= 0.25 * total)[:2]
        if params.sample_index % 2 == 1 and len(
            WORDLISTS
        ):  # odd samples are worse (best-of-k must reject them)
            chosen = chosen[:1]
        return f"The marked words share a class.\n[EXPLANATION]: {class_explanation(chosen)}"

    def _classify(self, user: str, fuzzing: bool) -> tuple[str, list[TokenLogprob]]:
        m = re.search(r"^Feature explanation: (.*)$", user, re.MULTILINE)
        lex = lexicon(m.group(1) if m else "")
        labels, probs = [], []
        for _, text in _EX_RE.findall(user):
            if fuzzing:
                marked = [w for run in _HL_RE.findall(text) for w in _words(run)]
                frac = sum(w in lex for w in marked) / len(marked) if marked else 0.0
                p = 0.05 + 0.9 * frac
            else:
                hits = sum(w in lex for w in _words(text))
                p = 0.05 + 0.9 * min(1.0, hits / 2)
            labels.append(int(p >= 0.5))
            probs.append(p)
        return json.dumps(labels), self._binary_logprobs(labels, probs)

    @staticmethod
    def _binary_logprobs(labels: list[int], probs: list[float]) -> list[TokenLogprob]:
        out = [TokenLogprob("[", 0.0, {"[": 0.0})]
        for k, (lab, p) in enumerate(zip(labels, probs, strict=True)):
            top = {"1": math.log(p), "0": math.log(1 - p)}
            out.append(TokenLogprob(str(lab), top[str(lab)], top))
            out.append(TokenLogprob("," if k < len(labels) - 1 else "]", 0.0, {}))
        return out

    def _simulate(self, user: str) -> tuple[str, list[TokenLogprob]]:
        head, _, rest = user.partition("\n")
        m = re.search(r"find (.*)$", head)
        lex = lexicon(m.group(1) if m else "")
        vals = []
        for line in rest.splitlines():
            tok = line.rsplit("\t", 1)[0]
            vals.append(8 if any(w in lex for w in _words(tok)) else 0)
        lps = [TokenLogprob("[", 0.0, {})]
        for v in vals:
            top = {str(v): math.log(0.8), "0" if v else "8": math.log(0.2)}
            lps.append(TokenLogprob(str(v), math.log(0.8), top))
            lps.append(TokenLogprob(",", 0.0, {}))
        return json.dumps(vals), lps

    def _intruder(self, user: str) -> str:
        exs = _EX_RE.findall(user)
        classes = []
        for _, text in exs:
            c = classify_words([w for run in _HL_RE.findall(text) for w in _words(run)])
            classes.append(max(c, key=c.get) if c else None)
        # the intruder is the example whose highlighted class is rarest
        freq = {c: classes.count(c) for c in classes}
        k = min(range(len(classes)), key=lambda i: (freq[classes[i]], i))
        return f"[RESPONSE]: {exs[k][0]}"


class OracleEmbedder:
    """Deterministic 'semantic' embedder for planted corpora: a text maps to its word-class counts,
    an explanation to the classes its lexicon covers (plus a small bag-of-words part)."""

    name = "oracle"

    def __init__(self) -> None:
        from autointerp.embed import HashingEmbedder

        self._classes = list(WORDLISTS)
        self._bow = HashingEmbedder(64)

    def embed(self, texts: list[str]):
        import numpy as np

        out = np.zeros((len(texts), len(self._classes)), np.float32)
        for r, t in enumerate(texts):
            counts = classify_words(_words(t))
            lex = lexicon(t)
            for j, c in enumerate(self._classes):
                out[r, j] = counts.get(c, 0) + (
                    3.0 if lex and {w.lower() for w in WORDLISTS[c]} <= lex else 0.0
                )
        x = np.concatenate([out, 0.1 * self._bow.embed(texts)], axis=1)
        return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class OracleLogprob:
    """Surprisal backend for the oracle: log p(word) is high for words the description names."""

    name = "oracle"

    async def logprob(self, prefix: str, texts: list[str]) -> list[float]:
        desc = prefix.rsplit("Description: ", 1)[-1].split("\n", 1)[0]
        lex = lexicon(desc)
        return [
            sum(math.log(0.3) if w in lex else math.log(0.01) for w in _words(t)) for t in texts
        ]


# --------------------------------------------------------------------------- steering fixtures
class WordTokenizer:
    """The planted corpus's word vocabulary as a minimal tokenizer (ids = vocab positions, id 0 =
    ``<bos>``): enough for :class:`autointerp.steering.Steerer` and the intervention explainer."""

    def __init__(self, vocab: list[str]) -> None:
        self.vocab = list(vocab)
        self._id = {w: i for i, w in enumerate(self.vocab)}
        self.bos_token_id = 0
        self.pad_token_id = 0
        self.eos_token_id = None

    def __len__(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self._id)

    def __call__(self, text: str, add_special_tokens: bool = False, **_: object) -> dict:
        ids = [self._id[w] for w in text.split() if w in self._id]
        return {"input_ids": ([0] if add_special_tokens else []) + ids}

    def decode(self, ids, **_: object) -> str:
        return "".join(" " + self.vocab[int(i)] for i in ids if int(i) != 0)


def planted_steering_model(vocab: list[str], d: int = 32, scale: float = 40.0, seed: int = 0):
    """A tiny random Llama over the planted word vocabulary (untied unembedding scaled by ``scale``
    so steering moves the next-token distribution), and decoder rows for the planted latents: a
    token-class latent's row is the mean unembedding row of its class's words (steering it promotes
    them); other latents get random rows. Returns (model, W_dec [n_planted, d])."""
    import torch
    from lm_kit.tiny import tiny_model

    from autointerp.synthetic import make_planted_corpus

    model = tiny_model(
        "llama", d=d, layers=2, vocab=len(vocab), seed=seed, tie_word_embeddings=False
    )
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(scale)
    emb = model.get_output_embeddings().weight.detach()
    wid = {w: i for i, w in enumerate(vocab)}
    planted = make_planted_corpus(n_docs=2).latents
    g = torch.Generator().manual_seed(seed)
    rows = []
    for p in planted:
        if p.classes:
            e = torch.stack([emb[wid[w]] for c in p.classes for w in WORDLISTS[c]]).mean(0)
            e = e - emb.mean(0)
        else:
            e = torch.randn(d, generator=g)
        rows.append(e / e.norm())
    return model, torch.stack(rows)


class OracleJudge:
    """Deterministic intervention judge: ``NLL(z | passage)`` falls with the share of passage words
    that the explanation's lexicon names (``-log((1 + hits) / (2 + words))``)."""

    name = "oracle-judge"

    def __init__(self, tok: WordTokenizer) -> None:
        self.tok = tok

    def nll(self, passages: list[list[int]], z: str) -> list[float]:
        lex = lexicon(z)
        out = []
        for p in passages:
            words = _words(self.tok.decode(p))
            hits = sum(w in lex for w in words)
            out.append(-math.log((1 + hits) / (2 + len(words))))
        return out
