#!/usr/bin/env python3
"""Writes the CLIP tokenizer's test data (tests/data/tokenizer, docs/tokenizer.md):

  bpe_simple_vocab_16e6.txt.gz   OpenCLIP's merges file, copied from the open_clip_torch wheel
  clip/vocab.json, merges.txt    the Hugging Face files built from it the way openai/clip-vit-large-patch14
                                 lays them out (49408 tokens, 48894 merges), with SD1.5's
                                 tokenizer_config.json and special_tokens_map.json (pads with <|endoftext|>)
  sdxl_tokenizer_2/*.json        SDXL's tokenizer_2 config files (pad_token "!"); the test puts them beside
                                 clip/'s vocab.json and merges.txt
  golden.json                    for every prompt: the ids (up to the end token: the rest is the pad id, and
                                 the attention mask is 1 exactly up to there) of transformers'
                                 CLIPTokenizer on both folders (padding="max_length", max_length=77 and 10,
                                 truncation=True), the same from transformers 4's slow CLIPTokenizer with ftfy
                                 and with its no-ftfy path (BERT's BasicTokenizer), OpenCLIP's SimpleTokenizer ids (context
                                 77 and 10) and OpenCLIP's cleaned text

    pip install transformers open_clip_torch ftfy regex
    pip install --no-deps --target /tmp/tf4 transformers==4.46.3 tokenizers==0.20.3 huggingface-hub==0.26.5
    python3 tools/make_tokenizer_golden.py tests/data/tokenizer /tmp/tf4
"""
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

import open_clip
import transformers
from open_clip import tokenizer as oc_tokenizer
from transformers import CLIPTokenizer

PROMPTS = [
    "a photo of a cat",
    "A PHOTO OF A CAT",
    "Hello, World! How's it going?",
    "don't, won't, can't, I'm, you're, we've, they'll, he'd",
    "IT'S THE 'LL 'RE 'VE 'M 'D 'T",
    "rock'n'roll ''quoted'' 'single' '' 's",
    "1234567890 3.14159 1,000,000 2nd 21st 007",
    "   leading and   trailing   whitespace   ",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u2003em\u3000ideographic",
    "",
    "!!!???...,,,;;;",
    "hello!! world! !",
    "emoji \U0001F431\U0001F680 and \u2764\ufe0f and \U0001F44D\U0001F3FD",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m",
    "cafe\u0301 nai\u0308ve A\u030a q\u0307\u0323",
    "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff21\uff22\uff23 \uff11\uff12\uff13\uff1f\uff01",
    "\ufb01ne \ufb02our o\ufb03ce \u0132ssel",
    "\u201ccurly\u201d \u2018quotes\u2019 it\u2019s \u201ehere\u201f",
    "&amp; &lt;tag&gt; &quot;q&quot; &#39; &#x263A; &copy; &amp;amp; &EACUTE;",
    "<b>bold</b> &amp; more &lt;3",
    "\u4e2d\u6587\u5b57\u7b26 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3 \u039f\u0394\u039f\u03a3 \u03a3",
    "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442, \u041f\u0420\u041e\u041f\u0418\u0421\u041d\u042b\u0415",
    "\u0130stanbul D\u0130YARBAKIR stra\u00dfe STRASSE \u1e9e",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "<|startoftext|>a cat<|endoftext|>",
    "<start_of_text>a cat<end_of_text>",
    "<|ENDOFTEXT|> and <|EndOfText|> <START_OF_TEXT>",
    "a<|endoftext|>!b <|endoftext|>!! x!<|startoftext|>",
    "masterpiece, best quality, (ultra-detailed:1.2), [sharp focus], {8k}, ((hdr)), <lora:abc:0.7>",
    "a_b-c/d\\e|f@g#h$i%j^k&l*m+n=o~p`q",
    "a very " * 60 + "long prompt",
    "cat " * 75,
    "cat " * 76,
    "x" * 200,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "bell\x07 null\x00 esc\x1b[31mred\x1b[0m del\x7f",
    "bell\x07 null esc\x1b[31mred\x1b[0m del\x7f",
    "zero\u200bwidth joiner\u200d soft\u00adhyphen bom\ufeff",
    "\u2028line sep\u2029para \x85nel",
    "math \u2211\u222b\u221a\u221e \u2264\u2265 \u00b1\u00d7\u00f7 \u00bd \u00b2 \u2177 \u216b",
    "numbers \u0661\u0662\u0663 \u096a\u096b\u096c \u2460\u2461",
    "&nbsp;&nbspx &ampx &notit; &#128512; &#0; &#x110000; &#150; &#65",
    "The  quick\u00a0brown   fox.\n\nJumps!",
    "\x1c\x1d\x1e\x1f sep chars",
    "a's b'S c'\u017f",
    "iota \u0345 sub!\u0345script \u1fb3 \u1fbc",
]


def hf_folder(root, name, pad):
    def added(c):
        return {"__type": "AddedToken", "content": c, "lstrip": False, "normalized": True, "rstrip": False,
                "single_word": False}

    def plain(c):
        return {"content": c, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}

    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    config = {"add_prefix_space": False, "bos_token": added("<|startoftext|>"), "do_lower_case": True,
              "eos_token": added("<|endoftext|>"), "errors": "replace", "model_max_length": 77,
              "pad_token": pad, "tokenizer_class": "CLIPTokenizer", "unk_token": added("<|endoftext|>")}
    special = {"bos_token": plain("<|startoftext|>"), "eos_token": plain("<|endoftext|>"), "pad_token": pad,
               "unk_token": plain("<|endoftext|>")}
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
        f.write("\n")
    return d


PAD = {"hf_eos": 49407, "hf_bang": 0, "hfbasic_eos": 49407, "hfbasic_bang": 0, "hfftfy_eos": 49407,
       "hfftfy_bang": 0, "openclip": 0}


def trimmed(ids, mask, pad):
    """ids up to the end token; checks that the rest is padding and the mask 1 exactly up to there."""
    n = sum(mask)
    assert mask == [1] * n + [0] * (len(mask) - n) and ids[n:] == [pad] * (len(ids) - n), (ids, mask)
    return ids[:n]


def hf_ids(tok, prompt):
    out = {}
    for n in (77, 10):
        r = tok(prompt, padding="max_length", max_length=n, truncation=True)
        out[str(n)] = trimmed(r["input_ids"], r["attention_mask"], tok.pad_token_id)
    return out


def basic_worker(clip_dir, sdxl_full):
    """Runs under transformers 4 (PYTHONPATH): its slow CLIPTokenizer with ftfy and without."""
    import ftfy  # noqa: F401  (the slow tokenizer uses it when it can import it)
    from transformers import CLIPTokenizer as SlowClipTokenizer
    from transformers.models.bert.tokenization_bert import BasicTokenizer
    result = {}
    for pad, d in (("eos", clip_dir), ("bang", sdxl_full)):
        tok = SlowClipTokenizer.from_pretrained(d)
        assert tok.fix_text is not None
        result[f"hfftfy_{pad}"] = [hf_ids(tok, p) for p in PROMPTS]
        # What CLIPTokenizer.__init__ does when ftfy cannot be imported.
        tok.fix_text = None
        tok.nlp = BasicTokenizer(strip_accents=False, do_split_on_punc=False)
        result[f"hfbasic_{pad}"] = [hf_ids(tok, p) for p in PROMPTS]
    result["transformers4"] = __import__("transformers").__version__
    json.dump(result, sys.stdout)


def main(out, transformers4):
    os.makedirs(out, exist_ok=True)
    gz = os.path.join(out, "bpe_simple_vocab_16e6.txt.gz")
    shutil.copy(oc_tokenizer.default_bpe(), gz)
    lines = gzip.open(gz).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    vocab = list(oc_tokenizer.bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    clip_dir = hf_folder(out, "clip", "<|endoftext|>")
    with open(os.path.join(clip_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(clip_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    sdxl_dir = hf_folder(out, "sdxl_tokenizer_2", "!")

    with tempfile.TemporaryDirectory() as tmp:
        sdxl_full = os.path.join(tmp, "sdxl_tokenizer_2")
        shutil.copytree(sdxl_dir, sdxl_full)
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(clip_dir, f), sdxl_full)
        hf = {"hf_eos": CLIPTokenizer.from_pretrained(clip_dir), "hf_bang": CLIPTokenizer.from_pretrained(sdxl_full)}
        env = dict(os.environ, PYTHONPATH=transformers4)
        basic = json.loads(subprocess.run([sys.executable, __file__, "--basic-worker", clip_dir, sdxl_full], env=env,
                                          check=True, stdout=subprocess.PIPE).stdout)
        oc = oc_tokenizer.SimpleTokenizer()
        cases = []
        for i, p in enumerate(PROMPTS):
            case = {"prompt": p, "openclip_clean": oc_tokenizer._clean_lower(p)}
            results = {name: hf_ids(tok, p) for name, tok in hf.items()}
            results.update({name: basic[name][i] for name in ("hfbasic_eos", "hfbasic_bang", "hfftfy_eos", "hfftfy_bang")})
            for name, r in results.items():
                for k, v in r.items():
                    case[f"{name}_{k}"] = v
            for n in (77, 10):
                ids = oc([p], context_length=n)[0].tolist()
                end = max(i for i, v in enumerate(ids) if v != 0) + 1
                assert ids[end - 1] == 49407
                case[f"openclip_{n}"] = ids[:end]
            cases.append(case)
    meta = {"pad_ids": PAD, "transformers": transformers.__version__, "transformers4": basic["transformers4"],
            "open_clip": open_clip.__version__,
            "ftfy": __import__("ftfy").__version__, "python": sys.version.split()[0]}
    with open(os.path.join(out, "golden.json"), "w", encoding="utf-8") as f:
        # One case a line.
        f.write('{"meta": ' + json.dumps(meta) + ',\n"cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=True) for c in cases))
        f.write("\n]}\n")
    print(f"wrote {len(cases)} prompts to {out} ({meta})")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--basic-worker":
        basic_worker(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3:
        main(sys.argv[1], sys.argv[2])
    else:
        sys.exit(__doc__)
