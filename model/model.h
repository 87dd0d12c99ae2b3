/*
 * model.h - what model/ offers the rest of ernie-doc: tensors and the
 * safetensors container (mmapped, validated, never copied); the
 * SentencePiece tokenizer; and the native ERNIE-4.5-VL engine (checkpoint
 * loading, chat template, vision tower, resampler, MoE decoder, sampling,
 * generation, golden-style evaluation).
 *
 * model/ knows tokens and tensors, not documents. It never prints.
 * An open struct ed_st is immutable and may be read from many threads.
 *
 * Usage (safetensors; the engine's usage is with struct ed_model below):
 *     struct ed_st *st;
 *     char err[256];
 *     if (ed_model_st_open(&st, "model.safetensors", err, sizeof err))
 *             ... fail, err says which tensor or field is bad ...
 *     const struct ed_tensor *t = ed_model_st_find(st, "lm_head.weight");
 *     ... t->data, t->shape, t->dtype ...
 *     ed_model_st_close(st);
 */
#ifndef ED_MODEL_H
#define ED_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

enum ed_dtype {
	ED_DT_F64,
	ED_DT_F32,
	ED_DT_F16,
	ED_DT_BF16,
	ED_DT_I64,
	ED_DT_I32,
	ED_DT_I16,
	ED_DT_I8,
	ED_DT_U8,
	ED_DT_BOOL,
	/* ggml block formats (GGUF files only; spec/QUANT.md) */
	ED_DT_Q8_0,
	ED_DT_Q4_0,
	ED_DT_Q4_K,
	ED_DT_Q6_K,
	/* the further formats of llama.cpp's files (qblocks.c) */
	ED_DT_Q4_1,
	ED_DT_Q5_0,
	ED_DT_Q5_1,
	ED_DT_IQ4_NL,
	ED_DT_Q2_K,
	ED_DT_Q3_K,
	ED_DT_Q5_K,
	ED_DT_IQ4_XS,
	ED_DT_COUNT
};

#define ED_TENSOR_MAX_DIMS 8

/* A view: data points into a mapping or a caller's buffer, never owned. */
struct ed_tensor {
	const char *name;
	enum ed_dtype dtype;
	int ndim;
	int64_t shape[ED_TENSOR_MAX_DIMS];
	const void *data;
	size_t nbytes;
};

/* Bytes per element; 0 for an unknown dtype. */
size_t ed_model_dtype_size(enum ed_dtype dt);
/* "F32", "BF16", ... as safetensors spells them. */
const char *ed_model_dtype_name(enum ed_dtype dt);
/* A plain (safetensors) dtype by its name ("BF16", ...), or -1. */
int ed_model_dtype_parse(const char *name);
/* Number of elements (product of the shape; 1 for a scalar). */
int64_t ed_model_tensor_numel(const struct ed_tensor *t);
/* Element i converted to double (F64/F32/F16/BF16/ints). */
double ed_model_tensor_get(const struct ed_tensor *t, int64_t i);

/* ---- safetensors -------------------------------------------------- */

/* The JSON header may not exceed this (the reference library's cap). */
#define ED_ST_MAX_HEADER (100u << 20)

struct ed_st;

/*
 * Map and validate a .safetensors file: header length capped, JSON well
 * formed, every dtype known, every shape non-negative, every byte range
 * inside the data section with size = numel x dtype size, no two tensors
 * overlapping. 0, or ED_ENOENT (cannot open), ED_EFORMAT (message names the
 * bad tensor or field), ED_ENOMEM.
 */
int ed_model_st_open(struct ed_st **out, const char *path, char *err,
		     size_t errlen);
/* The same over bytes in memory (not copied; must outlive the handle). */
int ed_model_st_open_mem(struct ed_st **out, const void *data, size_t len,
			 char *err, size_t errlen);
void ed_model_st_close(struct ed_st *st);

size_t ed_model_st_count(const struct ed_st *st);
/* Tensors in header order; NULL past the end. Owned by st. */
const struct ed_tensor *ed_model_st_at(const struct ed_st *st, size_t i);
/* By exact name, or NULL. Owned by st. */
const struct ed_tensor *ed_model_st_find(const struct ed_st *st,
					 const char *name);
/* A "__metadata__" string value, or NULL. Owned by st. */
const char *ed_model_st_meta(const struct ed_st *st, const char *key);

/*
 * Write tensors (views) to path as safetensors, header padded to 8 bytes,
 * data in the order given. Written to a temporary file and renamed, so a
 * crash never leaves a half file. 0, ED_ECREATE, ED_EIO or ED_EINVAL.
 */
int ed_model_st_write(const char *path, const struct ed_tensor *tensors,
		      size_t n, char *err, size_t errlen);

/* Versions of the libraries model/ links against ("jansson 2.14"). */
void ed_model_versions(char *buf, size_t len);

/* ---- GGUF ----------------------------------------------------------- */

/*
 * GGUF v3 files (spec/QUANT.md). The reader maps the file and checks
 * every length, offset and shape before use; tensors come back as views
 * with torch-order shapes ([out, in]) and ed_dtype types (F32, F16, BF16
 * and the block formats of kernels.h; other ggml types are refused with
 * ED_ECONFIG, naming the type).
 */
struct ed_gguf;
bool ed_gguf_sniff(const char *path); /* starts with "GGUF" */
int ed_gguf_open(struct ed_gguf **out, const char *path, char *err,
		 size_t errlen);
/* The same over bytes the caller keeps (tests, fuzzing). */
int ed_gguf_open_mem(struct ed_gguf **out, const void *data, size_t len,
		     char *err, size_t errlen);
void ed_gguf_close(struct ed_gguf *g);
size_t ed_gguf_count(const struct ed_gguf *g);
const struct ed_tensor *ed_gguf_at(const struct ed_gguf *g, size_t i);
size_t ed_gguf_size(const struct ed_gguf *g);
/* Metadata: a string's bytes (not terminated), a u8 array, an unsigned
 * integer of any width. NULL / false when absent or of another type. */
const unsigned char *ed_gguf_string(const struct ed_gguf *g, const char *key,
				    size_t *len);
const unsigned char *ed_gguf_u8_array(const struct ed_gguf *g, const char *key,
				      size_t *len);
bool ed_gguf_uint(const struct ed_gguf *g, const char *key, uint64_t *v);
/* A float32 or float64 value; a bool. */
bool ed_gguf_float(const struct ed_gguf *g, const char *key, double *v);
bool ed_gguf_bool(const struct ed_gguf *g, const char *key, bool *v);
/* An array: its element type (GGUF's numbering: ED_GGUF_*), count and
 * the bytes of its elements (strings as u64 length + bytes each, checked
 * when the file was opened). false when absent or not an array. */
enum { ED_GGUF_I32 = 5, ED_GGUF_F32 = 6, ED_GGUF_STRING = 8 };
bool ed_gguf_array(const struct ed_gguf *g, const char *key, int *elem,
		   uint64_t *count, const unsigned char **data, size_t *len);
/* Whether a key is present (of any type). */
bool ed_gguf_has(const struct ed_gguf *g, const char *key);
/* The ggml type id of a dtype, or -1. */
int ed_gguf_type_id(enum ed_dtype dt);

/*
 * The writer: metadata and tensor infos first (offsets follow from the
 * types), then each tensor's bytes in the order declared. The file is
 * written as PATH.partial and renamed when closed whole; abort removes it.
 */
struct ed_gguf_writer;
int ed_gguf_writer_open(struct ed_gguf_writer **out, const char *path,
			char *err, size_t errlen);
int ed_gguf_writer_u32(struct ed_gguf_writer *w, const char *key, uint32_t v);
int ed_gguf_writer_string(struct ed_gguf_writer *w, const char *key,
			  const char *s, size_t n);
int ed_gguf_writer_bytes(struct ed_gguf_writer *w, const char *key,
			 const void *p, size_t n);
int ed_gguf_writer_f32(struct ed_gguf_writer *w, const char *key, float v);
int ed_gguf_writer_bool(struct ed_gguf_writer *w, const char *key, bool v);
/* arrays: n float32, n int32, n strings */
int ed_gguf_writer_f32s(struct ed_gguf_writer *w, const char *key,
			const float *v, size_t n);
int ed_gguf_writer_i32s(struct ed_gguf_writer *w, const char *key,
			const int32_t *v, size_t n);
int ed_gguf_writer_strings(struct ed_gguf_writer *w, const char *key,
			   const char *const *s, size_t n);
/* shape in torch order; the innermost dimension a multiple of the block */
int ed_gguf_writer_tensor(struct ed_gguf_writer *w, const char *name,
			  enum ed_dtype dt, int ndim, const int64_t *shape);
/* A tensor's bytes, whole or in consecutive parts (ED_EINVAL past its
 * declared size). */
int ed_gguf_writer_data(struct ed_gguf_writer *w, const void *p, size_t n,
			char *err, size_t errlen);
int ed_gguf_writer_close(struct ed_gguf_writer *w, char *err, size_t errlen);
void ed_gguf_writer_abort(struct ed_gguf_writer *w);

/* ---- quantization ------------------------------------------------ */

/*
 * Write the checkpoint at src (a directory or a GGUF file) as one GGUF
 * file: the language model's matrices in the block format of kind
 * ("bf16", "q8_0", "q6_k", "q4_k", "q4_0", or "q4_k_m": Q4_K with the
 * value projections and the output head in Q6_K; rows that do not fill
 * the blocks fall back to Q8_0, then BF16), the vision tower in BF16,
 * norms, biases and routers in F32; config.json and the tokenizer as
 * metadata. One tensor in memory at a time, its rows quantized by
 * threads; progress after each tensor. The output does not depend on
 * the thread count.
 */
struct ed_quantize_progress {
	size_t tensor, tensors;
	const char *name; /* the tensor just written */
	enum ed_dtype dtype;
	int64_t bytes_in, bytes_out, bytes_total, weights;
};
typedef void (*ed_quantize_fn)(void *ud, const struct ed_quantize_progress *p);
/* The index of a kind name, or -1. */
int ed_model_quant_kind(const char *name);
const char *ed_model_quant_kind_name(int kind);
int ed_model_quantize(const char *src, const char *out, int kind, int threads,
		      ed_quantize_fn progress, void *ud, char *err,
		      size_t errlen);
/* The file's layout: ernie-doc's own (every checkpoint; its names and
 * config.json as metadata) or llama.cpp's (text models only: its keys,
 * names, stacked experts and tokenizer arrays, readable by llama.cpp;
 * the mix's upgrades as llama-quantize makes them: attn_v and ffn_down
 * where more(i, n), the output head, the shape fallbacks). A VL
 * checkpoint in llama.cpp's layout is ED_EINVAL. */
enum ed_layout { ED_LAYOUT_ERNIE_DOC = 0, ED_LAYOUT_LLAMA = 1 };
int ed_model_quantize_layout(const char *src, const char *out, int kind,
			     enum ed_layout layout, int threads,
			     ed_quantize_fn progress, void *ud, char *err,
			     size_t errlen);

/* ---- tokenizer ---------------------------------------------------- */

/*
 * SentencePiece (BPE with byte fallback, and unigram models are refused)
 * read from tokenizer.model, plus added tokens (added_tokens.json,
 * tokenizer_config.json, special_tokens_map.json) matched as single ids.
 * Immutable after loading; safe to share between threads.
 */
struct ed_tokenizer;

/* Load tokenizer.model and the JSON side files from dir. 0, ED_ENOENT (no
 * tokenizer.model), ED_EFORMAT (bad protobuf or unsupported model). */
int ed_tok_open(struct ed_tokenizer **out, const char *dir, char *err,
		size_t errlen);
/* The same from the bytes of a .model file, no added tokens. */
int ed_tok_open_mem(struct ed_tokenizer **out, const void *data, size_t len,
		    char *err, size_t errlen);
/* From the bytes of a .model file and the side files' texts (each may be
 * NULL): the tokenizer a GGUF file carries. */
int ed_tok_open_parts(struct ed_tokenizer **out, const void *model, size_t len,
		      const char *added_json, const char *config_json,
		      const char *special_json, char *err, size_t errlen);
void ed_tok_close(struct ed_tokenizer *t);

/*
 * A vocabulary as llama.cpp's GGUF files keep it (tokenizer.ggml.*, the
 * "llama" SentencePiece model): a piece per id with its score and type
 * (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte),
 * the special ids, and the normalizer's flags and precompiled charsmap
 * (llama.cpp's keys; absent in its converter's files, which then encode
 * without a normalizer, as llama.cpp does). Control, unknown and
 * user-defined tokens are matched whole in text (special: control and
 * unknown), as the Hugging Face tokenizer matches its added tokens.
 */
struct ed_tok_arrays {
	int32_t n;
	char **tok;		    /* NUL-terminated pieces */
	float *score;		    /* or NULL (0) */
	int32_t *type;		    /* or NULL (normal) */
	int32_t unk, bos, eos, pad; /* -1 when none */
	bool add_space_prefix, remove_extra_ws, prefix_first_only;
	unsigned char *charsmap; /* or NULL */
	size_t charsmap_len;
};
int ed_tok_open_arrays(struct ed_tokenizer **out, const struct ed_tok_arrays *a,
		       char *err, size_t errlen);
/* A tokenizer's vocabulary in that form, padded to at least vocab ids
 * ("[PAD<id>]", unused): 0 or ED_ENOMEM. ed_tok_arrays_free releases
 * what it filled in. */
int ed_tok_export(const struct ed_tokenizer *t, int32_t vocab,
		  struct ed_tok_arrays *a);
void ed_tok_arrays_free(struct ed_tok_arrays *a);

/* Vocabulary size (pieces plus added tokens beyond them). */
int32_t ed_tok_size(const struct ed_tokenizer *t);
/* Id of a piece or added token spelled exactly, or -1. */
int32_t ed_tok_id(const struct ed_tokenizer *t, const char *piece);
/* Text of an id (piece or added token), or NULL. Owned by t. */
const char *ed_tok_piece(const struct ed_tokenizer *t, int32_t id);

/*
 * Encode UTF-8 text: added tokens anywhere in the text become their
 * single ids; the text between them is normalized and BPE-encoded as
 * SentencePiece does (spm_encode gives identical ids). Appends to *ids
 * (realloc'd, caller frees) and updates *n. 0 or ED_ENOMEM.
 */
int ed_tok_encode(const struct ed_tokenizer *t, const char *text, size_t len,
		  int32_t **ids, size_t *n);
/* Only the SentencePiece part, no added-token matching (for tests). */
int ed_tok_encode_spm(const struct ed_tokenizer *t, const char *text,
		      size_t len, int32_t **ids, size_t *n);

/* The bytes id stands for in decoded text (its piece with U+2581 as a
 * space; a byte piece's byte) into buf: their count, 0 when the token is
 * not text (control, unknown, unused, an added token), -1 when cap is too
 * small. */
int ed_tok_text_bytes(const struct ed_tokenizer *t, int32_t id, char *buf,
		      size_t cap);

/*
 * Decode ids to UTF-8 into b. Byte pieces are reassembled (each byte of
 * an invalid sequence becomes U+FFFD, a NUL byte is dropped, other
 * controls kept); control and special tokens are dropped when
 * skip_special; the dummy-prefix space of the first piece is removed.
 * 0 or ED_ENOMEM.
 */
int ed_tok_decode(const struct ed_tokenizer *t, const int32_t *ids, size_t n,
		  bool skip_special, struct ed_buf *b);

/* ---- the model ---------------------------------------------------- */

/*
 * An ERNIE-4.5(-VL) checkpoint directory: config.json (Baidu or
 * transformers shape), model.safetensors or model.safetensors.index.json
 * with shards, and optionally tokenizer.model. Weights are mmapped and
 * used in place. Immutable after open: share it between sessions and
 * threads (STYLE.md rule 22); each worker owns a struct ed_session.
 *
 * Usage:
 *     struct ed_model *m;
 *     struct ed_session *s;
 *     ed_model_open(&m, "ERNIE-4.5-VL-28B-A3B-PT", NULL, err, sizeof err);
 *     ed_session_new(&s, m, &(struct ed_session_opts){.threads = 2}, ...);
 *     ed_model_prompt_chat(m, &chat, &prompt, ...);   // template + tokens
 *     ed_session_generate(s, &prompt, &gen, on_token, ud, &res, ...);
 *     ed_session_free(s);
 *     ed_model_close(m);
 */
struct ed_model;
struct ed_backend;

/* Called with a note about the checkpoint (unknown tensors, ignored
 * fields); may be NULL. */
typedef void (*ed_note_fn)(void *ud, const char *note);

int ed_model_open(struct ed_model **out, const char *dir, ed_note_fn note,
		  void *ud, char *err, size_t errlen);
void ed_model_close(struct ed_model *m);
/*
 * An option: the vision tower's linear layers (each block's qkv, proj,
 * fc1 and fc2) on int8 products, VNNI's vpdpbusd (attention and the
 * resampler stay float32): the weights quantized
 * once to Q8_0 copies (owned by m, about half the BF16 size), each
 * patch's activations to int8 per 32. The float32 path stays the default
 * and the one the golden files check; `make bench` prints how far this
 * one moves projector_out and the first generated tokens. Call once
 * after ed_model_open(), before any session runs (not thread-safe). 0, or
 * ED_EINVAL (the CPU has no VNNI), ED_ENOMEM.
 */
int ed_model_set_vision_int8(struct ed_model *m, char *err, size_t errlen);

struct ed_model_info {
	char arch[64]; /* "ernie4_5_vl_moe", "ernie4_5_moe", ... */
	bool has_vision, rope_3d, tied_head;
	double rope_theta;
	int mrope[3]; /* 3-D: frequency pairs for t, h, w */
	int layers, moe_layers, hidden, heads, kv_heads, head_dim, vocab;
	int experts[2], moe_k, expert_inter[2], shared_inter, dense_inter;
	int vit_depth, vit_hidden, vit_heads;
	int64_t params, params_active;	     /* active per text token */
	int64_t bytes_by_dtype[ED_DT_COUNT]; /* indexed by enum ed_dtype */
	int64_t file_bytes;		     /* all shards */
	int64_t resident_bytes;		     /* weights + small f32 copies */
	int64_t kv_bytes_per_token; /* the cache a position of context takes */
	int n_tensors, n_unknown;
	int n_shards;
	bool has_tokenizer;
	/* where it came from: "safetensors directory", "GGUF, ernie-doc
	 * layout" or "GGUF, llama.cpp layout"; a GGUF file's
	 * general.architecture and the mix general.file_type names ("" when
	 * absent) */
	char layout[40], gguf_arch[64], file_type[24];
	char tokenizer[48]; /* its source, "" when none */
};

void ed_model_get_info(const struct ed_model *m, struct ed_model_info *i);
/* Bytes of weights one text decode step reads: attention, the dense MLP
 * or the k chosen experts with the shared ones and the router, the
 * head (as stored: quantized rows count their blocks). *weights (may be
 * NULL) receives how many weights that is without the head. */
int64_t ed_model_decode_bytes(const struct ed_model *m, int64_t *weights);
/* The tokenizer, or NULL when the directory has none. */
const struct ed_tokenizer *ed_model_tokenizer(const struct ed_model *m);

/* Token ids the templates and the stop rule need (-1 when unknown). */
struct ed_model_ids {
	int32_t bos, eos, end_of_sentence, begin_of_sentence;
	int32_t image, image_start, image_end, video, video_start, video_end;
	int32_t think, think_end;
};
void ed_model_get_ids(const struct ed_model *m, struct ed_model_ids *ids);

/* ---- prompts ------------------------------------------------------ */

/* One image as the vision tower takes it (see ed_render_tile_image):
 * npatches = grid_t * grid_h * grid_w rows of patch_dim floats in
 * merge-block order. Not owned. */
struct ed_image_in {
	const float *pixel_values;
	int grid_t, grid_h, grid_w;
};

/*
 * A tokenized prompt ready for prefill: ids, the image-placeholder mask
 * (mm) and the vision-expert mask (vision: placeholders plus image
 * start/end), 3-D positions pos[3][n] (rows t, h, w), rope_delta, and the
 * images in prompt order. Owned arrays; release with
 * ed_model_prompt_release().
 */
struct ed_prompt {
	int32_t *ids;
	uint8_t *mm, *vision;
	int32_t *pos;
	size_t n;
	int64_t rope_delta;
	struct ed_image_in *images;
	size_t n_images;
	void *chat; /* the conversation so far (for ed_model_prompt_extend) */
};

/*
 * Build a prompt from ids (placeholders already expanded, one per image
 * token) and the images: masks and positions are derived. Fails with
 * ED_EINVAL when the placeholder count and the image grids disagree.
 */
int ed_model_prompt_ids(const struct ed_model *m, const int32_t *ids, size_t n,
			const struct ed_image_in *images, size_t n_images,
			struct ed_prompt *p, char *err, size_t errlen);

/* A user turn: text parts and images in order (messages for the template). */
struct ed_chat_part {
	const char *text; /* or NULL for an image */
	const struct ed_image_in *image;
};

struct ed_chat {
	const char *system; /* NULL: none */
	const struct ed_chat_part *parts;
	size_t n_parts;
	bool thinking;		      /* generation prompt "<think>" */
	const char *assistant_prefix; /* text already generated, or NULL */
	bool tools;		      /* declare the zoom tool */
};

/* Render the chat template in use with the conversation (a system
 * message when c->system, the user turn, the zoom tool when c->tools,
 * enable_thinking = c->thinking), tokenize it, expand each image to its
 * placeholders, and derive masks and positions. Needs a tokenizer
 * (ED_ECONFIG without one). */
int ed_model_prompt_chat(const struct ed_model *m, const struct ed_chat *c,
			 struct ed_prompt *p, char *err, size_t errlen);
/* The rendered template text with one <|IMAGE_PLACEHOLDER|> per image
 * (for inspection and tests). Caller frees. */
char *ed_model_chat_text(const struct ed_model *m, const struct ed_chat *c);
void ed_model_prompt_release(struct ed_prompt *p);

/* ---- chat templates ------------------------------------------------ */

/*
 * Which template prompts the checkpoint (template.c): --chat-template
 * (ed_model_set_chat_template) over --template (ed_model_set_variant:
 * that built-in) over the checkpoint's own (chat_template.jinja,
 * chat_template.json, tokenizer_config.json's chat_template, GGUF
 * tokenizer.chat_template) over the built-in of the variant the
 * checkpoint's name or template shows (PT unless -Thinking).
 */
enum ed_variant { ED_VARIANT_PT, ED_VARIANT_THINKING };

/* Parse and use text (origin names it for model info). 0 or ED_EFORMAT
 * with the template's line. */
int ed_model_set_chat_template(struct ed_model *m, const char *text, size_t len,
			       const char *origin, char *err, size_t errlen);
/* The same from a file (origin: its path). ED_ENOENT, ED_ETOOBIG (16 MiB),
 * ED_EFORMAT. */
int ed_model_load_chat_template(struct ed_model *m, const char *path, char *err,
				size_t errlen);
/* Use the built-in template of variant v, whatever the checkpoint has. */
int ed_model_set_variant(struct ed_model *m, enum ed_variant v, char *err,
			 size_t errlen);
/* "pt" / "thinking" (-1 for neither) */
int ed_model_variant_parse(const char *s);
struct ed_template_info {
	const char *origin;  /* "built-in ERNIE-4.5-VL Thinking", a path... */
	const char *variant; /* "PT" or "Thinking" */
	const char *why;     /* what the variant was told apart from */
	const char *text;    /* the template's source */
};
void ed_model_get_template(const struct ed_model *m,
			   struct ed_template_info *t);

/*
 * Render an OpenAI-style conversation (a JSON array of messages; tools a
 * JSON array or NULL) with the template in use, as transformers'
 * apply_chat_template(messages, tools, add_generation_prompt=True, ...)
 * does: enable_thinking only when thinking >= 0, bos_token and eos_token
 * from the tokenizer. Appends to out. 0, ED_EINVAL (bad JSON, or the
 * template raised: its message), ED_ETOOBIG, ED_ENOMEM.
 */
int ed_model_render_messages(const struct ed_model *m, const char *messages,
			     const char *tools, int thinking,
			     struct ed_buf *out, char *err, size_t errlen);
/* Tokenize a rendered prompt as the engine does (image placeholders
 * checked: each image one <|IMAGE_START|>, placeholders, <|IMAGE_END|>;
 * one placeholder an image, not expanded). Caller frees *ids. */
int ed_model_encode_prompt(const struct ed_model *m, const char *text,
			   size_t len, int32_t **ids, size_t *n,
			   size_t *n_images, char *err, size_t errlen);

/* ---- tools: the zoom loop ------------------------------------------- */

/* The zoom tool (spec section 8): its name and its declaration in the
 * OpenAI function format, as the template and remote requests give it. */
#define ED_ZOOM_TOOL "image_zoom_in_tool"
const char *ed_model_zoom_tool_json(void);

/* A tool call: name and arguments (JSON text) when they could be read,
 * the raw text between the call tags (native), the call id (remote). */
struct ed_tool_call {
	char *name, *arguments, *raw, *id;
};
void ed_tool_call_release(struct ed_tool_call *c);

/*
 * Find a complete "<tool_call>...</tool_call>" in generated text (after
 * the </think>, if any). 1 with *call filled (name and arguments NULL
 * when the body is not {"name": ..., "arguments": ...} JSON; raw always)
 * and *start at the opening tag; 0 when there is none; ED_ENOMEM.
 */
int ed_model_parse_tool_call(const char *text, struct ed_tool_call *call,
			     size_t *start);

/*
 * The prompt of a conversation one step on: prev, then the tokens
 * generated after it (gen), then the tool result (text and images)
 * rendered by the template. Earlier images keep their grids (positions)
 * but not their pixels (already in the cache). 0 or ED_E*.
 */
int ed_model_prompt_extend(const struct ed_model *m,
			   const struct ed_prompt *prev, const int32_t *gen,
			   size_t n_gen, const char *text,
			   const struct ed_image_in *images, size_t n_images,
			   bool thinking, struct ed_prompt *out, char *err,
			   size_t errlen);

/* ---- sessions and generation -------------------------------------- */

struct ed_session;

struct ed_pool;

struct ed_session_opts {
	int threads;	 /* 0 = 1 */
	int64_t max_ctx; /* KV cache positions at most; 0 = 8192 */
	/* threads of another session's to share (sessions decoded
	 * together), borrowed: it must outlive this session; NULL = own */
	struct ed_pool *pool;
};

/* The KV cache grows with the positions used (float32 keys and values,
 * ed_model_info.kv_bytes_per_token each), never past max_ctx. */
int ed_session_new(struct ed_session **out, const struct ed_model *m,
		   const struct ed_session_opts *o, char *err, size_t errlen);
void ed_session_free(struct ed_session *s);
/* Bytes the KV cache holds allocated now. */
size_t ed_session_kv_bytes(const struct ed_session *s);
/* The session's threads, for ed_session_opts.pool. */
struct ed_pool *ed_session_pool(struct ed_session *s);

/* Called with each intermediate tensor of a forward pass (names as in
 * the golden files: patch_embed_out, vision_block_out, ..., logits,
 * router_logits.layerN, ...). The tensor is valid during the call. */
typedef void (*ed_trace_fn)(void *ud, const struct ed_tensor *t);
void ed_session_set_trace(struct ed_session *s, ed_trace_fn fn, void *ud);

/*
 * Reset the cache and run the prompt (vision tower, resampler, decoder).
 * *logits (owned by the session, vocab floats) is the last position's.
 * 0, ED_ETOOBIG (longer than max_ctx), ED_ENOMEM, ED_EINVAL.
 */
int ed_session_prefill(struct ed_session *s, const struct ed_prompt *p,
		       const float **logits, char *err, size_t errlen);
/* Feed one generated token at the next position; *logits as above. */
int ed_session_step(struct ed_session *s, int32_t token, const float **logits,
		    char *err, size_t errlen);
/*
 * The same for n sessions of one model at once (n <= 64), one token
 * each: one pass over the weights for all of them, the experts they chose
 * each read once. Every session's logits (ed_session_logits) are bit for
 * bit what ed_session_step() gives it alone, whatever the others are.
 * Runs on the first session's threads. 0 or ED_E* (none advanced).
 */
int ed_session_step_batch(struct ed_session *const *s, int n,
			  const int32_t *tokens, char *err, size_t errlen);
/* The logits of the last prefill or step (vocab floats, owned by s). */
const float *ed_session_logits(const struct ed_session *s);
/* Weight bytes the last step (or batch step) led by s read: everything
 * once, the experts its batch chose each once. */
int64_t ed_session_step_bytes(const struct ed_session *s);
/* Next text position (t = h = w) for a generated token. */
int64_t ed_session_next_pos(const struct ed_session *s);
/* Milliseconds the last prefill spent in the vision tower and resampler,
 * and in the decoder. */
void ed_session_timings(const struct ed_session *s, double *ms_vision,
			double *ms_decoder);

struct ed_gen_params {
	int max_new_tokens; /* 0 = until a stop token or the context ends */
	float temperature;  /* 0 = greedy (first index on ties) */
	float top_p;	    /* 1 = off */
	int top_k;	    /* 0 = off */
	uint64_t seed;
	bool ignore_eos; /* golden runs: EOS is not a stop */
	/* tests: these ids are "generated" first, whatever the logits */
	const int32_t *forced;
	size_t n_forced;
	/* only tokens this grammar allows (see ed_constraint_new); NULL:
	 * any. Generation ends ("stop") when the value is complete, or
	 * ("grammar") when no token can go on. Shared, not owned. */
	struct ed_constraint *constraint;
};

/* A token as it is generated: its id and decoded text (valid during the
 * call; may be empty for a partial UTF-8 sequence). Return non-zero to
 * stop generating (finish reason "callback"). id ED_TOKEN_RESET (text
 * NULL) means the output so far is void: a remote request is retried. */
#define ED_TOKEN_RESET (-2)
typedef int (*ed_token_fn)(void *ud, int32_t id, const char *text, size_t len);

struct ed_gen_result {
	char *text;	 /* decoded output, caller frees */
	int32_t *tokens; /* caller frees */
	size_t n_tokens;
	int64_t tokens_in;
	const char *finish_reason; /* "stop", "length", "callback",
				      "grammar" */
	double ms_vision, ms_prefill, ms_decode;
};

/* Prefill and sample until a stop token (</s>, <|end_of_sentence|>),
 * max_new_tokens, or the callback says stop. 0 or ED_E*. */
int ed_session_generate(struct ed_session *s, const struct ed_prompt *p,
			const struct ed_gen_params *g, ed_token_fn cb, void *ud,
			struct ed_gen_result *r, char *err, size_t errlen);
/*
 * The same after a tool result: p is the whole conversation (see
 * ed_model_prompt_extend) and begins with what the cache holds; only the
 * rest is run (new images through the vision tower), then generation
 * goes on. r->tokens_in counts the new prompt tokens. 0 or ED_E*.
 */
int ed_session_continue(struct ed_session *s, const struct ed_prompt *p,
			const struct ed_gen_params *g, ed_token_fn cb, void *ud,
			struct ed_gen_result *r, char *err, size_t errlen);
/* Positions in the cache. */
int64_t ed_session_cached(const struct ed_session *s);
void ed_gen_result_release(struct ed_gen_result *r);

/* Sample an id from logits (vocab floats, not modified) per g; rng is
 * the caller's state, seeded from g->seed. */
int32_t ed_model_sample(const float *logits, int32_t vocab,
			const struct ed_gen_params *g, uint64_t *rng);

/* ---- JSON Schema and constrained decoding ------------------------- */

/*
 * A JSON Schema compiled once (schema.c) for validation and for
 * constrained decoding (grammar.c). The subset: type (one or a list),
 * properties, required, additionalProperties (true or false; generation
 * writes only the listed properties, in their order), items, enum, const,
 * minItems/maxItems, minLength/maxLength, pattern (literals, ., classes,
 * \d \w \s, groups, |, * + ? {m,n}, anchors only at the ends; generated
 * strings match it whole), format (date, date-time, email, uri),
 * $defs/$ref without recursion; title, description, $schema, $id,
 * $comment, examples, default are annotations. Anything else is refused.
 * Immutable once compiled: share it between threads.
 *
 * Usage:
 *     struct ed_schema *s;
 *     ed_schema_compile(&s, text, len, err, sizeof err);
 *     ed_constraint_new(&c, s, tok, vocab, stops, 2, err, sizeof err);
 *     gen.constraint = c;  ...generate...
 *     ed_schema_validate(s, out, len, err, sizeof err);
 *     ed_constraint_free(c); ed_schema_free(s);
 */
struct ed_schema;
/* 0, ED_EFORMAT (not a JSON object), ED_EINVAL (outside the subset: the
 * message names the keyword and where), ED_ENOMEM. */
int ed_schema_compile(struct ed_schema **out, const char *json, size_t len,
		      char *err, size_t errlen);
void ed_schema_free(struct ed_schema *s);
/* Its title ("schema" without one), the sha256 of its canonical text
 * (keys sorted, compact) and that text. Owned by s. */
const char *ed_schema_title(const struct ed_schema *s);
const char *ed_schema_sha256(const struct ed_schema *s);
const char *ed_schema_json(const struct ed_schema *s);
/* The most bytes (so tokens) a conforming output of the grammar can
 * take, or -1 when strings or arrays are unbounded. */
int64_t ed_schema_max_bytes(const struct ed_schema *s);
/* One line per property and item ("- /total (number, required): Total.
 * The amount due") for a prompt. 0 or ED_ENOMEM. */
int ed_schema_describe(const struct ed_schema *s, struct ed_buf *out);
/* Does text conform (JSON Schema semantics: patterns searched, formats as
 * the grammar defines them)? 0, ED_EFORMAT (not JSON), ED_EINVAL (the
 * message gives the JSON Pointer and why). */
int ed_schema_validate(const struct ed_schema *s, const char *text, size_t len,
		       char *err, size_t errlen);

/* The matcher's state: where in the grammar the bytes so far are. */
struct ed_cstate;
int ed_cstate_new(struct ed_cstate **out, const struct ed_schema *s);
void ed_cstate_reset(struct ed_cstate *st, const struct ed_schema *s);
void ed_cstate_copy(struct ed_cstate *dst, const struct ed_cstate *src);
void ed_cstate_free(struct ed_cstate *st);
/* Feed bytes: 0, or ED_EINVAL when one is refused (st is then void). */
int ed_schema_feed(const struct ed_schema *s, struct ed_cstate *st,
		   const char *bytes, size_t n);
/* The output may end here (a value is complete); nothing may follow. */
bool ed_cstate_complete(const struct ed_schema *s, const struct ed_cstate *st);
bool ed_cstate_final(const struct ed_schema *s, const struct ed_cstate *st);

/* A schema over a tokenizer's vocabulary: the tokens' bytes in a trie,
 * stop ids (allowed when a value is complete) and a cache of masks per
 * state (thread-safe). s and t must outlive it. */
struct ed_constraint;
int ed_constraint_new(struct ed_constraint **out, const struct ed_schema *s,
		      const struct ed_tokenizer *t, int32_t vocab,
		      const int32_t *stop, int nstop, char *err, size_t errlen);
void ed_constraint_free(struct ed_constraint *c);
const struct ed_schema *ed_constraint_schema(const struct ed_constraint *c);
/* 64-bit words of a mask (one bit per token id). */
size_t ed_constraint_words(const struct ed_constraint *c);
bool ed_constraint_is_stop(const struct ed_constraint *c, int32_t id);
/* The longest token's bytes. */
int ed_constraint_max_token(const struct ed_constraint *c);
/*
 * The tokens allowed in st (stop ids excluded; *stop_ok says whether they
 * are): a cached mask, or scratch (words of the caller's) filled in;
 * NULL on ED_ENOMEM. The cached one stays valid until the constraint is
 * freed.
 */
const uint64_t *ed_constraint_mask(struct ed_constraint *c,
				   const struct ed_cstate *st,
				   uint64_t *scratch, bool *stop_ok);
/* The reference: every token's bytes fed to a copy of st, one by one. */
void ed_constraint_mask_naive(const struct ed_constraint *c,
			      const struct ed_cstate *st, uint64_t *bits,
			      bool *stop_ok);
/* Feed token id: 0, or ED_EINVAL (the grammar refuses it). */
int ed_constraint_advance(const struct ed_constraint *c, struct ed_cstate *st,
			  int32_t id);
/* Masks found in the cache, walked, and states cached. */
void ed_constraint_stats(struct ed_constraint *c, int64_t *hits,
			 int64_t *misses, int64_t *states);

/* ---- backends ------------------------------------------------------ */

/*
 * One interface over the native engine and OpenAI-compatible servers
 * (vLLM, FastDeploy, llama-server). A backend is shared by the pipeline's
 * workers: ed_backend_run() may be called from up to `jobs` threads at
 * once (native: each call takes one of `jobs` sessions; remote: requests
 * are multiplexed on one curl multi handle by an I/O thread).
 *
 * Usage:
 *     struct ed_backend *b;
 *     struct ed_backend_opts o = {.server_url = "http://gpu:8000/v1",
 *                                 .jobs = 16};
 *     ed_backend_open(&b, &o, err, sizeof err);
 *     ed_backend_run(b, &req, &resp, err, sizeof err);   // any worker
 *     ed_response_release(&resp);
 *     ed_backend_close(b);
 */
enum ed_backend_kind { ED_BACKEND_NATIVE, ED_BACKEND_REMOTE };

struct ed_backend_opts {
	const char *model_dir;	   /* native */
	int threads;		   /* native: threads per session */
	const char *server_url;	   /* remote: base URL, e.g. http://h:8000/v1 */
	const char *model_name;	   /* remote: model id; NULL asks /v1/models */
	const char *api_key;	   /* remote: bearer token, or NULL */
	const char *ca_file;	   /* remote: CA bundle (PEM) that verifies an
				      https server; NULL: the system's */
	int jobs;		   /* concurrent requests / sessions; 0 = 1 */
	double timeout_s;	   /* remote: one attempt; 0 = 600 */
	int retries;		   /* remote: after the first attempt; <0 = 4 */
	double retry_wait_s;	   /* remote: first backoff; 0 = 0.5 */
	bool vision_int8;	   /* native: ed_model_set_vision_int8() */
	const char *chat_template; /* native: a Jinja file to prompt with */
	const char *template_variant; /* native: "pt" or "thinking" built-in */
	bool text_model_ok;	      /* native: accept a text-only model (else
					 ED_ECONFIG: it cannot read images) */
};

/* One part of the user turn: text, or an image as the native engine takes
 * it (tiles) and as a server takes it (PNG bytes, already resized). */
struct ed_req_part {
	const char *text;
	const struct ed_image_in *tiles;
	const unsigned char *png;
	size_t png_len;
};

struct ed_request {
	const char *system; /* or NULL */
	const struct ed_req_part *parts;
	size_t n_parts;
	bool thinking;
	bool tools; /* declare the zoom tool: replies may be tool calls */
	struct ed_gen_params gen;
	/* tests only: the native engine emits this text (tokenized) first */
	const char *force_text;
	/* the answer is a JSON value of this schema: the native engine
	 * decodes under its grammar, a server is asked for it
	 * (response_format json_schema, strict); NULL: free text. Borrowed:
	 * it must outlive the backend, which caches a constraint for it. */
	const struct ed_schema *schema;
	/* generated text as it arrives (reasoning and answer alike); return
	 * non-zero to stop (finish reason "callback"). Called on the worker
	 * thread (native) or the I/O thread (remote), one request at a time. */
	ed_token_fn on_text;
	void *ud;
};

struct ed_response {
	char *content;	 /* the answer (after </think> in thinking mode) */
	char *reasoning; /* the thinking, or NULL */
	char finish_reason[16];	  /* "stop", "length", "callback",
				     "tool_calls" */
	struct ed_tool_call call; /* for "tool_calls": the first call */
	int64_t tokens_in, tokens_out;
	double ms_vision, ms_prefill, ms_decode, ms_total;
	int attempts; /* remote: HTTP attempts made */
};

int ed_backend_open(struct ed_backend **out, const struct ed_backend_opts *o,
		    char *err, size_t errlen);
void ed_backend_close(struct ed_backend *b);
enum ed_backend_kind ed_backend_kind(const struct ed_backend *b);
/* "native/<dir name>" or "remote/<model name>": the resume key's model. */
const char *ed_backend_model_id(const struct ed_backend *b);
/* The native model (tokenizer, tile parameters), or NULL for remote. */
const struct ed_model *ed_backend_model(const struct ed_backend *b);

/*
 * Run one request to completion. 0, or ED_EUNAVAIL (no server after the
 * retries), ED_EAGAIN (server overloaded or too slow after the retries),
 * ED_EFORMAT (a malformed reply), ED_EINVAL (refused by the server: 4xx),
 * ED_ETOOBIG (prompt longer than the context), ED_ENOMEM.
 */
int ed_backend_run(struct ed_backend *b, const struct ed_request *r,
		   struct ed_response *out, char *err, size_t errlen);
void ed_response_release(struct ed_response *r);
/*
 * A conversation: the zoom loop. ed_conv_start() runs the first request
 * as ed_backend_run() does; while the reply is a tool call,
 * ed_conv_reply() answers it with parts (the zoomed image, text) and
 * generates the next step with the same request (sampling, callback,
 * thinking, tools) and at most max_new_tokens. The native engine holds
 * its session, and the conversation's cache, until ed_conv_end(); a
 * server is sent the whole conversation each time.
 */
struct ed_conv;
int ed_conv_start(struct ed_backend *b, const struct ed_request *r,
		  struct ed_conv **conv, struct ed_response *out, char *err,
		  size_t errlen);
int ed_conv_reply(struct ed_conv *c, const struct ed_req_part *parts,
		  size_t n_parts, int max_new_tokens, struct ed_response *out,
		  char *err, size_t errlen);
void ed_conv_end(struct ed_conv *c);
/* The native conversation's prompt so far (every token in the cache and
 * the last step's output), NULL for a server: for tests. */
const struct ed_prompt *ed_conv_prompt(const struct ed_conv *c);

/* The native engine's decoding so far: passes over the weights, tokens
 * they fed, and the most sequences one pass took (all 0 for a server).
 * Thread-safe. */
struct ed_batch_stats {
	int64_t steps, tokens;
	int widest;
};
void ed_backend_batch_stats(struct ed_backend *b, struct ed_batch_stats *s);

/* End every request in flight and refuse new ones (ED_EINTR): SIGINT.
 * Native requests end at their next token through on_text instead.
 * Thread-safe. */
void ed_backend_cancel(struct ed_backend *b);

/* Split "reasoning</think>answer" (an optional leading <think> too). The
 * parts are malloc'd; reasoning is NULL without a </think>. */
int ed_split_thinking(const char *text, char **reasoning, char **content);

/* ---- golden-style evaluation -------------------------------------- */

/*
 * Run a golden-style inputs.json (prompt_token_ids, images relative to
 * the file, generation.new_tokens) through the model and collect every
 * tensor the golden README names, under the same names. The images are
 * decoded and tiled by the caller-supplied function (model/ knows no
 * image formats). Write them with ed_model_st_write().
 */
typedef int (*ed_load_image_fn)(void *ud, const char *path, float **pixels,
				int *grid_t, int *grid_h, int *grid_w,
				char *err, size_t errlen);

struct ed_eval {
	struct ed_tensor *t;
	size_t n;
	void *mem_; /* private */
};

int ed_model_eval(const struct ed_model *m, const char *inputs_json,
		  ed_load_image_fn load, void *ud, int threads,
		  struct ed_eval *out, char *err, size_t errlen);
void ed_model_eval_release(struct ed_eval *e);

#endif
