#!/bin/sh
# mktok.sh DIR - train a small SentencePiece BPE tokenizer (byte fallback)
# with Debian's spm_train and write the Hugging Face side files the way the
# ERNIE checkpoints carry them: the special tokens as added tokens with
# ids after the pieces. Deterministic for a given spm_train.
set -eu
dir=$1
mkdir -p "$dir"
awk 'BEGIN {
	split("the quick brown fox jumps over lazy dog invoice total amount page document scan text model vision language expert router token table figure formula markdown html heading paragraph", w, " ");
	split("文字 识别 模型 文档 图像 处理 中文 表格 公式 数据", c, " ");
	s = 12345;
	for (i = 0; i < 2500; i++) {
		line = "";
		n = 4 + i % 11;
		for (j = 0; j < n; j++) {
			s = (s * 1103515245 + 12345) % 2147483648;
			if (s % 7 == 0) word = c[1 + int(s / 7) % 10];
			else if (s % 11 == 0) word = int(s / 11) % 10000;
			else word = w[1 + int(s / 3) % 26];
			line = line (j ? " " : "") word;
		}
		print line;
	}
	print "café naïve résumé Ångström";
	print "# Heading | cell | cell |";
}' >"$dir/corpus.txt"
spm_train --input="$dir/corpus.txt" --model_prefix="$dir/spm" \
	--vocab_size=400 --model_type=bpe --byte_fallback=true \
	--character_coverage=1.0 --num_threads=1 \
	--minloglevel=2 >"$dir/spm_train.log" 2>&1
mv "$dir/spm.model" "$dir/tokenizer.model"
rm -f "$dir/spm.vocab" "$dir/corpus.txt"
cat >"$dir/added_tokens.json" <<'JSON'
{"<|begin_of_sentence|>": 400, "<|end_of_sentence|>": 401,
 "<|IMAGE_PLACEHOLDER|>": 402, "<|IMAGE_START|>": 403, "<|IMAGE_END|>": 404,
 "<|VIDEO_START|>": 405, "<|VIDEO_END|>": 406, "<think>": 407,
 "</think>": 408}
JSON
cat >"$dir/special_tokens_map.json" <<'JSON'
{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
 "cls_token": "<|begin_of_sentence|>", "sep_token": "<|end_of_sentence|>",
 "additional_special_tokens": ["<|IMAGE_PLACEHOLDER|>", "<|IMAGE_START|>",
 "<|IMAGE_END|>"]}
JSON
cat >"$dir/tokenizer_config.json" <<'JSON'
{"added_tokens_decoder": {
 "407": {"content": "<think>", "special": false},
 "408": {"content": "</think>", "special": false}},
 "tokenizer_class": "Ernie4_5_Tokenizer"}
JSON
