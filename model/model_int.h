/*
 * model_int.h - private to model/: the configuration read from
 * config.json, the weights bound to their tensors, and the model and
 * session structs shared by loader.c, vision.c, decoder.c, session.c and
 * eval.c. Nothing outside model/ includes this file.
 */
#ifndef ED_MODEL_INT_H
#define ED_MODEL_INT_H

#include "model/kernels/kernels.h"
#include "model.h"
#include "model/jinja.h"

#define ED_MAX_LAYERS 256

/* ---- configuration (config.c) -------------------------------------- */

struct ed_config {
	char arch[64];
	char name[256]; /* _name_or_path, to tell PT from Thinking */
	/* language model */
	int vocab, hidden, layers, heads, kv_heads, head_dim;
	int dense_inter;
	float rms_eps;
	int ctx_len; /* max_position_embeddings */
	double rope_theta;
	bool rope_3d;
	int mrope[3]; /* rotary pairs for h, w, t (interleaved h/w first) */
	bool moe[ED_MAX_LAYERS];
	int experts[2]; /* text, vision; vision 0 for text-only models */
	int moe_k;
	int expert_inter[2];
	int shared; /* number of shared experts */
	float moe_norm_min;
	bool tie_embeddings;
	/* token ids from the config (-1 when absent) */
	int32_t bos, eos, pad, image, image_start, image_end, video,
	    video_start, video_end;
	/* vision */
	bool has_vision;
	int vit_depth, vit_hidden, vit_heads, vit_inter, patch, merge,
	    temporal_merge, in_channels;
	float vit_eps;
	double vit_rope_theta;
	bool vit_quick_gelu;
};

/* Parse config.json (Baidu or transformers shape). 0 or ED_ECONFIG. */
int ed_config_parse(struct ed_config *c, const char *json, size_t len,
		    ed_note_fn note, void *ud, char *err, size_t errlen);

/* ---- llama.cpp's GGUF layout (llamacpp.c) ---------------------------- */

/* A GGUF file in llama.cpp's layout (not ernie-doc's own). */
bool ed_llama_layout(const struct ed_gguf *g);
/* The configuration its metadata implies: 0 or ED_ECONFIG (an unknown
 * architecture, a missing key). */
int ed_llama_config(const struct ed_gguf *g, struct ed_config *c, char *err,
		    size_t errlen);
/* Its tokenizer from tokenizer.ggml.*: 0, ED_ENOENT (none), ED_ECONFIG. */
int ed_llama_tokenizer(const struct ed_gguf *g, struct ed_tokenizer **out,
		       char *err, size_t errlen);
/* Which layers llama.cpp's keys can call MoE: leading dense layers, then
 * every step-th; ED_EINVAL when the config's set is not of that form. */
int ed_llama_moe_plan(const struct ed_config *c, int *lead, int *step);
/* The metadata of a text checkpoint in that layout (keys, tokenizer
 * arrays, chat template): 0, ED_EINVAL (MoE layers llama.cpp cannot
 * say), ED_ECONFIG (vocabulary longer than the embeddings), ED_ENOMEM. */
int ed_llama_write_meta(struct ed_gguf_writer *w, const struct ed_model *m,
			const char *name, uint32_t ftype, bool quantized);

/* ---- weights (loader.c) -------------------------------------------- */

/* A matrix in torch layout [rows = out, cols = in], used in place. */
struct ed_wt {
	const void *data;
	enum ed_dtype dt;
	int64_t rows, cols;
};

struct ed_expert {
	struct ed_wt gate, up, down;
};

struct ed_layer {
	const float *ln_in, *ln_post;
	struct ed_wt q, k, v, o;
	bool moe;
	struct ed_wt gate, up, down; /* dense MLP, or shared experts */
	bool has_shared;
	/* routers, float32, [experts][hidden] (the -PT files' [hidden][experts]
	 * transposed at load) */
	const float *router[2];
	const float *bias[2]; /* correction bias per pool, or NULL */
	struct ed_expert *experts[2];
};

struct ed_vit_block {
	const float *n1w, *n1b, *n2w, *n2b;
	struct ed_wt qkv, proj, fc1, fc2;
	const float *qkv_b, *proj_b, *fc1_b, *fc2_b;
	/* the int8 option: qkv, proj, fc1, fc2 as Q8_0 (owned), or NULL */
	struct ed_wt q8[4];
};

struct ed_vision {
	struct ed_wt patch;
	struct ed_vit_block *blocks;
	const float *ln_w, *ln_b;
	/* resampler */
	struct ed_wt s1, s2, t1, t2, mlp;
	const float *s1_b, *s2_b, *s_ln_w, *s_ln_b;
	const float *t1_b, *t2_b, *t_ln_w, *t_ln_b;
	const float *mlp_b, *after_norm;
};

struct ed_model {
	struct ed_config cfg;
	struct ed_st **shards;
	struct ed_gguf *gguf; /* a GGUF file instead of shards */
	bool llama;	      /* that file in llama.cpp's layout */
	int n_shards;
	int64_t file_bytes;
	struct ed_wt embed, head;
	const float *norm;
	struct ed_layer *layers;
	struct ed_vision vis;
	struct ed_arena params; /* small tensors converted to float32 */
	int64_t params_bytes;
	char **shard_files;
	struct ed_tokenizer *tok;
	struct ed_model_ids ids;
	/* the chat template in use (template.c): its text (NULL: the
	 * built-in of the variant), parsed; where it came from; the
	 * variant (PT or Thinking) assumed and why */
	char *chat_template;
	struct ed_jinja *jinja;
	char template_origin[160];
	int variant;
	char variant_why[200];
	char name[256]; /* cfg.name, else the GGUF general.name */
	int n_tensors, n_unknown;
	int64_t bytes_by_dtype[ED_DT_COUNT];
};

/* A whole small file, NUL-terminated (*len without it); NULL with errno
 * (EFBIG past cap). Caller frees. */
char *ed_model_read_file(const char *path, size_t cap, size_t *len);

/* the built-in chat templates (chat_templates.c, generated from
 * model/templates/) */
extern const char ed_template_ernie_4_5_text[];
extern const char ed_template_ernie_4_5_vl_pt[];
extern const char ed_template_ernie_4_5_vl_thinking[];

/* At load (template.c): find the checkpoint's own chat template in dir
 * (a directory) or the GGUF metadata, and the variant it is. */
int ed_model_template_init(struct ed_model *m, const char *dir, char *err,
			   size_t errlen);
void ed_model_template_release(struct ed_model *m);

/* ---- forward passes ------------------------------------------------ */

struct ed_session {
	const struct ed_model *m;
	struct ed_pool *pool;
	bool own_pool; /* else borrowed (a batch shares one) */
	int64_t max_ctx;
	int64_t n_past;	  /* positions in the cache */
	int64_t next_pos; /* text position of the next token */
	/* per layer [positions][kv_heads * head_dim], each grown as the
	 * conversation is (kv_cap positions allocated, never more than
	 * max_ctx): a layer's keys are contiguous, kvd floats apart */
	float **kcache, **vcache;
	int64_t kv_cap;
	float *logits; /* [vocab] */
	ed_trace_fn trace;
	void *trace_ud;
	bool all_logits; /* trace logits of every prompt position */
	double ms_vision, ms_decoder; /* of the last prefill */
	int64_t
	    step_bytes; /* weights the last decode step led from here read */
};

/* Room in the cache for positions [0, need): 0, ED_ETOOBIG past
 * max_ctx, ED_ENOMEM. */
int ed_session_reserve(struct ed_session *s, int64_t need, char *err,
		       size_t errlen);
/* Key and value rows of a position in a layer. */
static inline float *ed_k_at(const struct ed_session *s, int layer, int64_t pos)
{
	return s->kcache[layer] +
	       pos * (int64_t)s->m->cfg.kv_heads * s->m->cfg.head_dim;
}
static inline float *ed_v_at(const struct ed_session *s, int layer, int64_t pos)
{
	return s->vcache[layer] +
	       pos * (int64_t)s->m->cfg.kv_heads * s->m->cfg.head_dim;
}

/* Emit a float32 or int64 tensor to the trace, if any. */
void ed_trace_f32(struct ed_session *s, const char *name, const float *d,
		  int ndim, const int64_t *shape);
void ed_trace_i64(struct ed_session *s, const char *name, const int64_t *d,
		  int ndim, const int64_t *shape);

/* template.c: placeholder tokens of one image. */
int64_t ed_image_tokens(const struct ed_config *c,
			const struct ed_image_in *im);

/* vision.c: images -> projector rows [sum tokens][hidden]. */
int ed_vision_forward(struct ed_session *s, const struct ed_image_in *img,
		      size_t n, float *out, char *err, size_t errlen);

/* decoder.c: run n tokens from embeddings x [n][hidden] at positions
 * pos[3][n] with the vision mask, appending to the cache; logits of the
 * last position into s->logits (and of all when s->all_logits). */
int ed_decoder_forward(struct ed_session *s, float *x, int64_t n,
		       const int32_t *pos, const uint8_t *vision, char *err,
		       size_t errlen);

/*
 * One generation, a token at a time (session.c), so that a batch can
 * step many: ed_gen_begin() runs the prompt; each ed_gen_next() samples
 * from the latest logits, hands the text to the callback and says 0 (feed
 * G->next, then call ed_gen_stepped()), 1 (done: *r is complete) or
 * ED_E* (r released). ed_session_generate() is this loop on one session;
 * a sequence's tokens are the same whichever way it is stepped.
 */
struct ed_gen {
	struct ed_session *s;
	struct ed_gen_params g;
	ed_token_fn cb;
	void *ud;
	struct ed_gen_result *r;
	struct ed_buf text;
	size_t cap, emitted;
	int need; /* UTF-8 continuation bytes still to come */
	uint64_t rng;
	double t0, t1;
	const float *logits;
	int32_t next;
	/* constrained decoding: the grammar's state, a mask's scratch, the
	 * logits with the refused tokens at -inf */
	struct ed_cstate *cs;
	uint64_t *scratch;
	float *masked;
};
int ed_gen_begin(struct ed_gen *G, struct ed_session *s,
		 const struct ed_prompt *p, bool cont,
		 const struct ed_gen_params *g, ed_token_fn cb, void *ud,
		 struct ed_gen_result *r, char *err, size_t errlen);
int ed_gen_next(struct ed_gen *G, char *err, size_t errlen);
void ed_gen_stepped(struct ed_gen *G);
/* Give up a generation begun (r released). */
void ed_gen_abort(struct ed_gen *G);

/* Sessions one decode step may batch. */
#define ED_MAX_BATCH 64

/* decoder.c: one decode step for n sessions of one model, each fed one
 * token at its next position (a text token): one pass over the weights
 * for all. Logits into each session's s->logits; n_past and next_pos
 * advance. Runs on ss[0]'s pool. A session's numbers are the same
 * whatever the others are. 0, ED_ETOOBIG, ED_EINVAL, ED_ENOMEM. */
int ed_decoder_step(struct ed_session *const *ss, int n, const int32_t *tokens,
		    char *err, size_t errlen);

/*
 * batch.c: the native backend's sequences decoded together. slots
 * sessions share threads; ed_batcher_run() (any thread, one call per
 * slot at a time) hands a generation (ed_session_generate, or _continue
 * when cont) to the engine thread and returns when it is done, with the
 * same result it would have alone. Callbacks run on the engine thread.
 */
struct ed_batcher;
int ed_batcher_open(struct ed_batcher **out, const struct ed_model *m,
		    int slots, int threads, char *err, size_t errlen);
void ed_batcher_close(struct ed_batcher *b);
/* A free slot (waits for one); give it back with release. */
int ed_batcher_acquire(struct ed_batcher *b);
void ed_batcher_release(struct ed_batcher *b, int slot);
struct ed_session *ed_batcher_session(struct ed_batcher *b, int slot);
int ed_batcher_run(struct ed_batcher *b, int slot, const struct ed_prompt *p,
		   bool cont, const struct ed_gen_params *g, ed_token_fn cb,
		   void *ud, struct ed_gen_result *r, char *err, size_t errlen);
void ed_batcher_stats(struct ed_batcher *b, int64_t *steps, int64_t *tokens,
		      int *widest);

/* remote.c: the OpenAI-compatible client behind struct ed_backend. */
struct remote;
int remote_open(struct remote **out, const struct ed_backend_opts *o, char *err,
		size_t errlen);
void remote_close(struct remote *r);
void remote_cancel(struct remote *r);
const char *remote_model_name(const struct remote *r);
/* A conversation: the user turn of req, then each reply's assistant turn
 * and the tool results given to remote_conv_reply(). */
struct remote_conv;
int remote_conv_start(struct remote_conv **out, const struct ed_request *req);
int remote_conv_run(struct remote *r, struct remote_conv *c,
		    const struct ed_request *req, struct ed_response *out,
		    char *err, size_t errlen);
int remote_conv_reply(struct remote_conv *c, const char *call_id,
		      const struct ed_req_part *parts, size_t n);
void remote_conv_free(struct remote_conv *c);
/* The bytes of a 200 reply parsed as a transfer parses them, without a
 * server: an SSE stream (stream: handed over in pieces of chunk bytes, as
 * curl would; 0 = whole) or a JSON body, then the tool call in the text
 * when req has tools. 0, ED_EFORMAT (malformed), ED_EAGAIN (an error
 * event, or a stream that ends early: what a transfer retries),
 * ED_ENOMEM. For the fuzzer and the tests. */
int remote_parse_reply(const void *data, size_t len, bool stream, size_t chunk,
		       const struct ed_request *req, struct ed_response *out,
		       char *err, size_t errlen);

/* Embedding rows for ids (float32 [n][hidden]). */
void ed_embed(const struct ed_model *m, const int32_t *ids, int64_t n,
	      float *out);

/* ---- regular expressions (regex.c) ---------------------------------- */

/* A DFA over Unicode code points: the intervals [lo[i], lo[i+1]) every
 * character set of the pattern splits them into, a transition per state
 * and interval (-1: dead), acceptance, the fewest code points from each
 * state to acceptance (INT32_MAX: none) and the longest whole match from
 * the start (-1: unbounded). State 0 is the start. */
struct ed_dfa {
	int nstates, nint;
	uint32_t *lo;
	int16_t *next;
	uint8_t *accept;
	int32_t *mindist;
	int maxmin; /* the largest finite mindist */
	int longest;
};
/* The whole-string matcher of re (JSON Schema's ECMA-262 subset: literals,
 * ., classes, \d \w \s, groups, |, * + ? {m,n}; ^ and $ only at the
 * ends). 0, ED_EINVAL (outside the subset, named), ED_ENOMEM. */
int ed_dfa_compile(struct ed_dfa **out, const char *re, size_t len, char *err,
		   size_t errlen);
void ed_dfa_free(struct ed_dfa *d);
/* The state after cp from s (-1: dead). */
int ed_dfa_step(const struct ed_dfa *d, int s, uint32_t cp);
/* Whether some code point in [lo, hi] leads from s to a state that can
 * still accept within budget more code points (budget < 0: any). */
bool ed_dfa_range_live(const struct ed_dfa *d, int s, uint32_t lo, uint32_t hi,
		       int budget);

/* ---- JSON Schema (schema.c) and constrained decoding (grammar.c) ---- */

enum {
	T_OBJ = 1,
	T_ARR = 2,
	T_STR = 4,
	T_NUM = 8,
	T_INT = 16,
	T_BOOL = 32,
	T_NULL = 64,
	T_ANY = 127
};
enum { FMT_NONE, FMT_DATE, FMT_DATETIME, FMT_EMAIL, FMT_URI, FMT_COUNT };

#define G_MAX_REFS  32
#define G_MAX_NODES 60000
#define G_MAX_COUNT 100000
#define G_DEPTH	    24 /* values nest at most this deep */
#define G_UNBOUNDED (INT64_C(1) << 40)

/* A literal the output may spell: an enum or const value as compact
 * JSON, or true, false, null. */
struct glit {
	char *bytes;
	int len;
	struct json_t *value; /* the enum value, or NULL */
};

/* A property: its name as a JSON string literal (quotes included). */
struct gprop {
	char *name, *lit;
	int len;
	int node;
	bool required;
};

struct gnode {
	unsigned types; /* T_* */
	bool is_enum;	/* only the literals */
	int lit0, nlit;
	struct json_t *enum_vals; /* for validation */
	int prop0, nprop;
	bool addl_ok; /* validation: other properties allowed */
	int items;    /* node, or -1: any */
	int min_items, max_items, min_len, max_len; /* max -1: none */
	struct ed_dfa *pat;			    /* generation */
	struct pcre2_real_code_8 *re;		    /* validation (search) */
	int format;				    /* FMT_* */
	char *title, *desc;
};

struct ed_schema {
	struct gnode *nodes;
	int nnodes, ncap, root;
	int any; /* the node of "anything" (items left open) */
	struct gprop *props;
	int nprops, pcap;
	struct glit *lits;
	int nlits, lcap;
	struct ed_dfa *fmt[FMT_COUNT];
	char *text, *title;
	char sha256[65];
};

/* The matcher's stack: one frame per value being written. */
struct gframe {
	uint16_t node;
	uint8_t kind, phase;
	uint8_t ws;	    /* the whitespace slot is used */
	uint8_t need, ulen; /* a UTF-8 sequence: bytes to come, its length */
	int16_t dpat, dfmt; /* DFA states */
	int32_t a, b, c;
};

struct ed_cstate {
	uint8_t depth;
	uint8_t lead; /* the whitespace before the value is used */
	struct gframe f[G_DEPTH];
};

#endif
