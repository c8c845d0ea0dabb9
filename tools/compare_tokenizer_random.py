#!/usr/bin/env python3
"""Compares `convfusion-module tokenize` with the reference tokenizers on random
prompts drawn from a pool of troublesome pieces (whitespace of every kind,
combining marks, case oddities, CJK, Hangul jamo, emoji, full-width forms,
ligatures, curly quotes, C1 controls, HTML entities, special tokens,
contractions), on the files of tests/data/tokenizer (docs/tokenizer.md).

A mismatch of a reference that runs ftfy (OpenCLIP, transformers 4 with ftfy)
whose prompt ftfy changes differently with fix_encoding=False is counted apart: that is ftfy's mojibake repair, which the
tokenizer does not implement.

    python3 tools/compare_tokenizer_random.py build-cpu/apps/convfusion-module /tmp/tf4 [--seed=1 --count=400]

(/tmp/tf4: transformers 4, see tools/make_tokenizer_golden.py.)
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "tokenizer")

POOL = list("abcXYZ  019'!?.,;:-_()[]{}<>|&#/\\\"~`@$%^*+=") + [
    "\t", "\n", "\r", "\u00a0", "\u2003", "\u3000", "\u2028", "\u0085", "\x0b", "\x0c", "\x1c", "\x07", "\x7f",
    "\x1b[1m", "\u00e9", "e\u0301", "\u0301", "\u0323", "\u0307", "A\u030a", "\u212b", "\u00df", "\u1e9e", "\u0130",
    "\u0131", "\u03a3", "\u03c3", "\u03c2", "\u0391", "\u0386", "\u4e2d", "\u6587", "\uf900", "\u3042", "\u30ab",
    "\uff76", "\ud55c", "\u1100\u1161", "\u11a8", "\U0001F431", "\u2764\ufe0f", "\U0001F3FD", "\u200d", "\u200b",
    "\u00ad", "\ufeff", "\uff21", "\uff01", "\uff10", "\ufb01", "\u0133", "\u01c6", "\u201c", "\u201d", "\u2018",
    "\u2019", "\u02bc", "\u201e", "\x80", "\x92", "\x9d", "&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x41;",
    "&amp", "&ampx", "&nbsp;", "&EACUTE;", "&notin;", "&not", "&#150;", "&#0;", "&#", "&;", "<|endoftext|>",
    "<|startoftext|>", "<|ENDOFTEXT|>", "<start_of_text>", "<end_of_text>", "'s", "'S", "'ll", "'re", "'\u017f",
    "\u017f", "\u212a", "\u0661", "\u0966", "\u2460", "\u00bd", "\u00b2", "\u2167", "\u0645", "\u05d0", "\u0e01",
    "\u0e34", "\u0915\u094d", "\ufdfa", "\ud7a3", "\U00020000", "\U0001D400", "\u2126", "\u00c5", "\u1f80", "\u1fbc",
    "\u0345", "\u24b6", "\u2c65",
]


def references(prompts, mode, sdxl, out_path):
    """Runs in a child process (mode v4 needs transformers 4 first on sys.path)."""
    res = {}
    clip = os.path.join(DATA, "clip")
    if mode == "v5":
        from open_clip import tokenizer as oc
        from transformers import CLIPTokenizer
        for name, d in (("hf_eos", clip), ("hf_bang", sdxl)):
            t = CLIPTokenizer.from_pretrained(d)
            res[name] = [t(p, padding="max_length", max_length=77, truncation=True)["input_ids"] for p in prompts]
        o = oc.SimpleTokenizer()
        res["openclip"] = [o([p])[0].tolist() for p in prompts]
    else:
        from transformers import CLIPTokenizer
        from transformers.models.bert.tokenization_bert import BasicTokenizer
        for pad, d in (("eos", clip), ("bang", sdxl)):
            t = CLIPTokenizer.from_pretrained(d)
            assert t.fix_text is not None  # ftfy importable
            res[f"hfftfy_{pad}"] = [t(p, padding="max_length", max_length=77, truncation=True)["input_ids"]
                                    for p in prompts]
            t.fix_text = None
            t.nlp = BasicTokenizer(strip_accents=False, do_split_on_punc=False)
            res[f"hfbasic_{pad}"] = [t(p, padding="max_length", max_length=77, truncation=True)["input_ids"]
                                     for p in prompts]
    with open(out_path, "w") as f:
        json.dump(res, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("exe")
    ap.add_argument("transformers4")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, prompts_path, out_path = args.child
        with open(prompts_path) as f:
            prompts, sdxl = json.load(f)
        references(prompts, mode, sdxl, out_path)
        return

    rng = random.Random(args.seed)
    prompts = ["".join(rng.choice(POOL) for _ in range(rng.randint(0, 30))) for _ in range(args.count)]
    prompts = [p.replace("\x00", "") for p in prompts]  # a command line cannot carry NUL
    with tempfile.TemporaryDirectory() as tmp:
        sdxl = os.path.join(tmp, "sdxl")
        shutil.copytree(os.path.join(DATA, "sdxl_tokenizer_2"), sdxl)
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(DATA, "clip", f), sdxl)
        prompts_path = os.path.join(tmp, "prompts.json")
        with open(prompts_path, "w") as f:
            json.dump([prompts, sdxl], f)
        ref = {}
        for mode in ("v5", "v4"):
            env = dict(os.environ)
            if mode == "v4":
                env["PYTHONPATH"] = args.transformers4
            out = os.path.join(tmp, f"ref_{mode}.json")
            subprocess.run([sys.executable, __file__, args.exe, args.transformers4, "--child", mode, prompts_path, out],
                           env=env, check=True, stderr=subprocess.DEVNULL)
            with open(out) as f:
                ref.update(json.load(f))
        import ftfy
        flavours = {"hf_eos": [os.path.join(DATA, "clip")], "hf_bang": [sdxl],
                    "hfbasic_eos": [os.path.join(DATA, "clip"), "--hf-pipeline=basic"],
                    "hfbasic_bang": [sdxl, "--hf-pipeline=basic"],
                    "hfftfy_eos": [os.path.join(DATA, "clip"), "--hf-pipeline=ftfy"],
                    "hfftfy_bang": [sdxl, "--hf-pipeline=ftfy"],
                    "openclip": [os.path.join(DATA, "bpe_simple_vocab_16e6.txt.gz")]}
        total = 0
        for name, flags in flavours.items():
            cmd = [args.exe, "tokenize", "--tokenizer=" + flags[0]] + flags[1:] + ["--prompt=" + p for p in prompts]
            r = subprocess.run(cmd, capture_output=True, check=True)
            lines = r.stdout.decode().rstrip("\n").split("\n")
            bad = mojibake = 0
            for p, line, want in zip(prompts, lines, ref[name]):
                if [int(x) for x in line.split()] == want:
                    continue
                if "ftfy" in name or name == "openclip":
                    # transformers 4 runs ftfy on each piece between its special tokens.
                    pieces = re.split(r"<\|startoftext\|>|<\|endoftext\|>" + ("|!" if "bang" in name else ""), p) \
                        if "ftfy" in name else [p]
                    if any(ftfy.fix_text(q) != ftfy.fix_text(q, fix_encoding=False) for q in pieces):
                        mojibake += 1
                        continue
                bad += 1
                print(f"{name}: {p!r}\n  got  {line}\n  want {' '.join(map(str, want))}")
            total += bad
            print(f"{name}: {len(prompts)} prompts, {bad} mismatches" +
                  (f", {mojibake} more where ftfy repairs mojibake (not implemented)" if mojibake else ""))
        sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
