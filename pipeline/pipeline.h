/*
 * pipeline.h - policy: which inputs and pages, the text-layer and blank-page
 * guards, resume against the store, and what is stored and reported per
 * page. pipeline/ knows documents, models and SQL only through the public
 * headers of render/, model/ and store/. It never prints: results and
 * messages reach cmd/ through callbacks.
 *
 * Threads: a struct ed_pipeline is driven by one thread, which owns the
 * store and receives every callback; it runs `jobs` workers of its own.
 *
 * Usage:
 *     struct ed_pipeline_opts o;
 *     struct ed_pipeline *p;
 *     struct ed_run_result r;
 *     ed_pipeline_opts_default(&o);
 *     o.db_path = "ernie-doc.db";
 *     o.server_url = "http://gpu:8000/v1";
 *     o.jobs = 16;
 *     o.on_page = print_page;                 // one call per page
 *     if (ed_pipeline_open(&p, &o, err, sizeof err))
 *             ... fail ...
 *     ed_pipeline_run(p, paths, n, &r);       // 0, ED_EINTR, ED_EUNAVAIL
 *     ed_pipeline_close(p);
 */
#ifndef ED_PIPELINE_H
#define ED_PIPELINE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "model/model.h"
#include "render/render.h"
#include "store/store.h"

/* ---- inputs ------------------------------------------------------- */

/* Default cap on tokens generated for one page. */
#define ED_PIPELINE_MAX_TOKENS 4096

/* The OCR prompt and its version, stored with every model result (the
 * resume key includes it: a new prompt means new results). */
#define ED_PIPELINE_OCR_PROMPT_ID "ocr-v1"

/* Default cap on bytes read from standard input. */
#define ED_PIPELINE_MAX_STDIN (1ull << 30)

/* An input held in memory: a read-only mapping of a file, or the bytes of
 * standard input (capped). */
struct ed_source {
	const char *path; /* as given; "-" for standard input */
	const unsigned char *data;
	size_t len;
	char sha256[65];
	enum ed_render_kind kind;
	void *map_;	/* private */
	size_t maplen_; /* private */
	unsigned char *heap_;
};

/*
 * Open path ("-" = standard input, at most max_stdin bytes) and hash it.
 * 0, ED_ENOENT (missing or unreadable, or a directory), ED_ETOOBIG (stdin
 * over the cap), ED_EIO, ED_ENOMEM.
 */
int ed_pipeline_source_open(struct ed_source *src, const char *path,
			    uint64_t max_stdin, char *err, size_t errlen);
void ed_pipeline_source_release(struct ed_source *src);

/* Open the document in src (see ed_render_doc_open). */
int ed_pipeline_doc_open(const struct ed_source *src, const char *password,
			 const struct ed_render_limits *limits,
			 struct ed_doc **out, char *err, size_t errlen);

/*
 * Decode the first page of an image or document file and tile it for the
 * vision tower with tp (see ed_render_tile_image). *pixels is malloc'd
 * (caller frees), [t * h * w][3 * patch^2] floats. 0 or ED_E*.
 */
int ed_pipeline_tile_file(const char *path, const struct ed_tile_params *tp,
			  double dpi, float **pixels, int *grid_t, int *grid_h,
			  int *grid_w, char *err, size_t errlen);

/* ---- the raster the model sees --------------------------------------- */

/*
 * The first-pass pixel budget for a page: 2,048 image tokens of 28 x 28
 * pixels (an A4 page at about 129 DPI, 1064 x 1484). Chosen on evidence
 * (README, "Resolution"): a classical OCR engine reads 8-point text
 * without error from there on, while the model's own ceiling of 6,177
 * tokens costs three times the vision tower. --max-pixels overrides it;
 * detail it misses is what the zoom tool and --mode auto are for.
 */
#define ED_PIPELINE_PAGE_TOKENS 2048
#define ED_PIPELINE_MAX_PIXELS	(ED_PIPELINE_PAGE_TOKENS * 28ull * 28ull)
/* PDF pages are sized as their raster at this DPI would be tiled: a page
 * smaller than the budget keeps this resolution. */
#define ED_PIPELINE_NOMINAL_DPI 200.0

/*
 * Rasterize a page, or a region of it, for the model. With dpi > 0 a PDF
 * is rendered at that DPI (the tiling then resizes it); with dpi = 0 it
 * is rendered straight at the size smart_resize (tp) gives its raster at
 * nominal_dpi, so the tiling has nothing to resample. Raster pages come
 * at their native pixels either way. out is initialized here. 0 or ED_E*.
 */
int ed_pipeline_render_page(struct ed_doc *doc, int page,
			    const struct ed_rect *region, double dpi,
			    double nominal_dpi, const struct ed_tile_params *tp,
			    struct ed_image *out, char *err, size_t errlen);

/* The image as the backend takes it: tiles in merge-block order (native,
 * im pointing at them) or a PNG resized to the same smart_resize target
 * (remote; tiles then holds only the grid). */
struct ed_prepared {
	struct ed_tiles tiles;
	struct ed_image_in im;
	unsigned char *png;
	size_t png_len;
};
int ed_pipeline_image_prepare(struct ed_backend *b,
			      const struct ed_tile_params *tp,
			      const struct ed_image *img,
			      struct ed_prepared *pr, char *err, size_t errlen);
void ed_pipeline_image_release(struct ed_prepared *pr);

/* ---- guards ------------------------------------------------------- */

/*
 * Is a PDF text layer good enough to stand for the page? Needs at least
 * 16 visible characters, under 2% junk (U+FFFD, private use, controls),
 * at least half letters or digits, and - when images cover 30% of the
 * page or more - at least 5 characters per square inch (a scanned page
 * with a sparse OCR layer is not served from it).
 */
struct ed_text_stats {
	size_t visible, alnum, junk;
};
void ed_pipeline_text_stats(const char *text, size_t len,
			    struct ed_text_stats *s);
bool ed_pipeline_text_good(const struct ed_text_stats *s, double area_sq_in,
			   double image_coverage);

/*
 * Is a raster blank or near blank? Ink = pixels whose luma differs from the
 * page's dominant luma by more than 48 levels; blank below 0.02% ink.
 * *ink_fraction receives the measured fraction.
 */
bool ed_pipeline_is_blank(const struct ed_image *img, double *ink_fraction);

/* ---- structure ------------------------------------------------------ */

/*
 * Split Markdown into blocks (headings with their level, paragraphs,
 * lists, tables with html and cells, formulas, figures, code). All memory
 * comes from the arena a. 0 or ED_ENOMEM.
 */
int ed_pipeline_parse_markdown(const char *md, size_t len, struct ed_arena *a,
			       const struct ed_store_block **out, size_t *n);

/* Named PCRE2 patterns: the built-in set (date, amount, email, url,
 * phone) plus "NAME PATTERN" lines of a rules file. Immutable once loaded,
 * shared by threads. */
struct ed_rules;
/* 0, ED_ENOENT (no such file), ED_ECONFIG (a bad line or pattern, named
 * with its line number), ED_ENOMEM. */
int ed_pipeline_rules_load(struct ed_rules **out, const char *path, char *err,
			   size_t errlen);
/* The same from the text of a rules file (name: for messages); text NULL:
 * the built-in rules only. 0, ED_ECONFIG, ED_ENOMEM. */
int ed_pipeline_rules_parse(struct ed_rules **out, const char *text, size_t len,
			    const char *name, char *err, size_t errlen);
void ed_pipeline_rules_free(struct ed_rules *rs);
/* Every match of every rule in text: value (the group named "value" if
 * the rule has one) and byte span. Memory from the arena. 0 or ED_ENOMEM. */
int ed_pipeline_rules_run(const struct ed_rules *rs, const char *text,
			  size_t len, struct ed_arena *a,
			  const struct ed_store_field **out, size_t *n);

/* ---- the zoom tool ------------------------------------------------- */

/* The smallest box side on the 0-1000 scale; smaller boxes are grown. */
#define ED_ZOOM_MIN 20
/* The highest resolution a PDF region is rendered at. */
#define ED_ZOOM_MAX_DPI 1200

/* A zoom box on the 0-1000 scale of the page image, origin top left. */
struct ed_zoom_box {
	double x1, y1, x2, y2;
	char label[200];
};

/*
 * Check a zoom tool call: name must be the zoom tool, arguments a JSON
 * object with bbox_2d = 4 finite numbers (clamped to 0..1000; x1 < x2 and
 * y1 < y2 after that; sides under ED_ZOOM_MIN grown around their centre)
 * and an optional label. 0, or ED_EFORMAT with a message for the model.
 */
int ed_pipeline_zoom_parse(const char *name, const char *arguments,
			   struct ed_zoom_box *box, char *err, size_t errlen);
/* The box as a region of the page (fractions, as ed_render_page takes). */
struct ed_rect ed_pipeline_zoom_rect(const struct ed_zoom_box *b);
/* The box in points of the page as shown (rotation applied), origin top
 * left, as the text layer's word boxes: pts = x0, y0, x1, y1. */
void ed_pipeline_zoom_points(const struct ed_zoom_box *b, double width_pt,
			     double height_pt, double pts[4]);
/* The DPI at which the box of a width_pt x height_pt page fills
 * max_pixels, between 72 and ED_ZOOM_MAX_DPI. */
double ed_pipeline_zoom_dpi(const struct ed_zoom_box *b, double width_pt,
			    double height_pt, uint64_t max_pixels);

/* ---- inputs for batch ---------------------------------------------- */

/* A sorted list of document files. */
struct ed_pathlist {
	char **path;
	size_t n;
	size_t skipped; /* files that are not documents */
};

/*
 * Walk roots (directories recursively, following symbolic links but never
 * a directory twice; files as given) and keep the regular files whose
 * first bytes say PDF, TIFF, PNG or JPEG, sorted by path. 0, ED_ENOENT (a
 * root is missing), ED_ENOMEM.
 */
int ed_pipeline_walk(const char *const *roots, size_t n,
		     struct ed_pathlist *out, char *err, size_t errlen);
/* Keep the files of shard i of n (0-based), chosen by a hash of the path
 * below its root, so every machine given the same tree agrees. */
void ed_pipeline_shard(struct ed_pathlist *l, unsigned i, unsigned n);
/* The i-th path of the list. */
const char *ed_pipeline_path_at(const struct ed_pathlist *l, size_t i);
void ed_pipeline_pathlist_free(struct ed_pathlist *l);

/* ---- extraction to a JSON Schema ------------------------------------- */

/* The extraction prompt's version (with --prompt, "+" and 8 hex digits of
 * its sha256): part of the resume key, like the OCR prompt's. */
#define ED_PIPELINE_EXTRACT_PROMPT_ID "extract-v1"

enum ed_extract_scope { ED_EXTRACT_PAGE, ED_EXTRACT_DOCUMENT };
enum ed_extract_from { ED_EXTRACT_TEXT, ED_EXTRACT_IMAGE };

/*
 * A schema read from a file and compiled, with the prompt built from its
 * field list (and --prompt's words, or NULL). Immutable: share it between
 * workers. 0, ED_ENOENT, ED_ETOOBIG (over 4 MiB), ED_EFORMAT (not a JSON
 * object), ED_EINVAL (outside the supported subset: the keyword named).
 */
struct ed_extractor;
int ed_pipeline_extractor_open(struct ed_extractor **out,
			       const char *schema_path, const char *prompt,
			       char *err, size_t errlen);
void ed_pipeline_extractor_close(struct ed_extractor *x);
const struct ed_schema *
ed_pipeline_extractor_schema(const struct ed_extractor *x);
/* The prompt's id for the resume key: from text, or from the page image
 * ("+image": another prompt, other results). */
const char *ed_pipeline_extractor_prompt_id(const struct ed_extractor *x,
					    bool image);
/* Tokens to allow: max_tokens when > 0, else the schema's bound when it
 * has one under ED_PIPELINE_MAX_TOKENS, else that. */
int ed_pipeline_extractor_budget(const struct ed_extractor *x, int max_tokens);

/* An extraction's outcome: status "done" (json conforms), "incomplete"
 * (the budget ran out: json is the partial output), "invalid" (a server's
 * reply that does not conform, kept in json), "error" (code, error). */
struct ed_extraction {
	char status[12];
	char *json;
	char error[256];
	int code;
	int attempts;
	int64_t tokens_in, tokens_out;
	double ms;
};
void ed_extraction_release(struct ed_extraction *e);
/* A stored extraction (row id) read back: status, json, error. 0 or
 * ED_EIO. */
int ed_pipeline_extraction_read(struct ed_store *st, int64_t id,
				struct ed_extraction *out, char *err,
				size_t errlen);

/*
 * Fill x's schema from text (a page's, or a document's when document),
 * or from image (prepared for b; text NULL). A server's invalid reply is
 * retried once at temperature 0. Always 0: the outcome is in out (call
 * ed_extraction_release). Thread-safe as the backend is.
 */
int ed_pipeline_extract(const struct ed_extractor *x, struct ed_backend *b,
			const char *text, const struct ed_prepared *image,
			bool document, const struct ed_gen_params *gen,
			struct ed_extraction *out);

/* The leaves of a JSON value as fields rows: JSON Pointer, value as text
 * (NULL for null), and the first page whose text holds the value
 * verbatim (after whitespace normalisation) with its byte span (else the
 * first page, span -1). Memory from the arena. 0 or ED_ENOMEM. */
struct ed_page_text {
	int64_t page_id;
	int page_no;
	const char *text;
};
int ed_pipeline_extract_fields(const char *json,
			       const struct ed_page_text *pages, size_t npages,
			       struct ed_arena *a,
			       const struct ed_store_xfield **out, size_t *n);

/* One extraction reported by ed_pipeline_extract_run (valid during the
 * call): page_no 0 for a document. */
struct ed_extract_result {
	const char *path, *sha256;
	int page_no;
	const char *status, *json, *error;
	bool cached; /* stored by an earlier run; nothing recomputed */
};

struct ed_extract_summary {
	int done, incomplete, invalid, failed, cached;
	int first_code;
	int stop_code; /* ED_EINTR, ED_EUNAVAIL */
};

struct ed_extract_opts {
	const char *db_path;
	const struct ed_extractor *x;
	enum ed_extract_scope scope;
	enum ed_extract_from from;
	/* backend, as for OCR */
	const char *model_dir, *server_url, *model_name, *api_key, *ca_file;
	const char *chat_template, *template_variant;
	int threads, jobs, retries;
	double timeout_s, retry_wait_s;
	struct ed_gen_params gen;   /* max_new_tokens 0: the schema's budget */
	struct ed_tile_params tile; /* --from image */
	const char *password;
	struct ed_render_limits limits;
	bool force;
	const char *const *docs; /* selectors (path, sha256 prefix, id) */
	size_t ndocs;		 /* 0: every document */
	volatile sig_atomic_t *interrupted;
	void (*on_result)(void *ud, const struct ed_extract_result *r);
	void *ud;
};

/*
 * The extract command: for every selected document in the store, its
 * pages (or the document) filled in against the schema, unless the store
 * has the result (same document, page, schema, model and prompt) and not
 * force. Results are stored (one transaction each) and reported in
 * order. 0, or the stop code (ED_EINTR, ED_EUNAVAIL); ED_ECONFIG,
 * ED_EUNAVAIL, ED_ENOENT (a selector matches nothing) etc. before any
 * work, with err.
 */
int ed_pipeline_extract_run(const struct ed_extract_opts *o,
			    struct ed_extract_summary *sum, char *err,
			    size_t errlen);

/* ---- the review: HTML ------------------------------------------------ */

/* The default resolution of the page images in a review: an A4 page is
 * 496 x 702 pixels, a 20-page document a few MB. */
#define ED_PIPELINE_HTML_DPI 60

struct ed_html_opts {
	double image_dpi;     /* 0 = ED_PIPELINE_HTML_DPI */
	const char *password; /* an encrypted PDF's, or NULL */
};

/*
 * One self-contained HTML file (into out) for document doc_id of the
 * store: per page the image (rendered again from the document's stored
 * path, when it is still there and the same bytes) with the zoom boxes
 * drawn on it, beside the stored result: status, source, guards,
 * similarity, tokens, timings, the Markdown's blocks, the text with its
 * fields marked, extractions, the reasoning folded; failed pages say so.
 * Everything stored is escaped. 0, ED_ENOENT (no such document),
 * ED_ENOMEM.
 */
int ed_pipeline_export_html(struct ed_store *st, int64_t doc_id,
			    const struct ed_html_opts *o, struct ed_buf *out,
			    char *err, size_t errlen);
/* One HTML page about the whole store: documents and pages by status
 * and source, the pages to look at again (failed, guards that fired, low
 * similarity, extractions not done) linked to SHA12.html#page-N, pages
 * per hour and tokens per page as inline SVG, the runs. 0 or ED_ENOMEM. */
int ed_pipeline_report_html(struct ed_store *st, struct ed_buf *out, char *err,
			    size_t errlen);

/* ---- OCR ---------------------------------------------------------- */

enum ed_text_layer {
	ED_TEXT_LAYER_AUTO,  /* use a good text layer, else the model */
	ED_TEXT_LAYER_NEVER, /* always the model */
	ED_TEXT_LAYER_ONLY,  /* only the text layer, never render or model */
};

/* One page's outcome, valid during the on_page call only. */
struct ed_page_result {
	const char *path, *sha256;
	int page_no, pages;	   /* 1-based page, page count */
	int64_t page_id;	   /* row in the store, 0 if none */
	const char *status;	   /* "done", "blank", "needs-model", "error" */
	const char *source;	   /* "text-layer", "raster", "model" */
	const char *text;	   /* may be NULL */
	const char *reasoning;	   /* thinking mode */
	const char *error;	   /* for "error" and "needs-model" */
	const char *finish_reason; /* model pages: "stop", "length",
				      "repetition", "error" */
	const char *guard;	   /* guard verdicts */
	int attempts;
	const struct ed_store_zoom *zooms; /* the zoom tool's looks */
	size_t nzooms;
	int tool_errors;
	const char *pass; /* --mode auto: "ocr" or "think-zoom" */
	bool has_similarity;
	double similarity;
	size_t nblocks, nfields;
	int64_t tokens_in, tokens_out;
	double width_pt, height_pt;
	double ms_render;
	bool cached; /* finished by an earlier run; nothing recomputed */
	/* --schema, page scope: the extraction's status ("done",
	 * "incomplete", "invalid", "error"), value or reply, and error;
	 * NULL without one */
	const char *extraction_status, *extraction_json, *extraction_error;
};

/* One document's outcome. */
struct ed_doc_result {
	int code;	 /* 0, or ED_E* when the document failed whole */
	char error[512]; /* message when code != 0 */
	char sha256[65];
	const char *kind;
	int pages; /* in the document */
	int done, blank, needs_model, failed, cached;
	int elsewhere; /* pages another process is working on */
	int page_code; /* ED_E* of the page failures if all alike, else 0 */
};

/* Counters for a progress display, valid during the call. */
struct ed_progress {
	size_t docs_done, docs_opened, docs_total;
	int64_t pages_done, pages_known; /* pages of the documents opened */
	int64_t tokens_out;
	double elapsed_ms;
};

/* The whole run. */
struct ed_run_result {
	int docs, docs_failed;
	int done, blank, needs_model, failed, cached;
	int elsewhere;	  /* left to the other processes that claimed them */
	int first_code;	  /* ED_E* of the first document failure */
	bool single_code; /* every failure had first_code */
	int stop_code;	  /* ED_EINTR or ED_EUNAVAIL when the run stopped */
	char stop_error[512];
};

struct ed_pipeline_opts {
	const char *db_path;
	const char *mode; /* "ocr" (non-thinking), "think", or "auto" (ocr,
			     then think with zoom for pages the guards
			     flag) */
	bool zoom;	  /* think: declare the zoom tool */
	int zoom_steps;	  /* tool calls per page; 0 = 3 */
	const char *save_zooms; /* write each zoom's crop here, or NULL */
	const char *force_text; /* tests: the native engine emits this first */
	const char *prompt;	/* a custom task instead of the OCR prompt */
	/* backend: model_dir (native) or server_url (remote), neither = none */
	const char *model_dir;
	const char *server_url, *model_name, *api_key;
	const char *ca_file; /* remote: CA bundle for https, NULL: system's */
	int threads;	     /* native engine threads */
	bool vision_int8;    /* native: int8 products in the vision tower */
	const char *chat_template;    /* native: a Jinja file, or NULL */
	const char *template_variant; /* native: "pt"/"thinking" built-in */
	int jobs;		      /* workers: pages in flight; 0 = 1 */
	double timeout_s, retry_wait_s;
	int retries; /* < 0: the backend's default */
	/* generation */
	int max_tokens; /* per page cap; 0 = ED_PIPELINE_MAX_TOKENS */
	float temperature, top_p;
	uint64_t seed;
	int repeat_retries; /* retries after a repetition loop; < 0 = 2 */
	struct ed_tile_params tile; /* smart_resize budget for the model */
	enum ed_text_layer text_layer;
	struct ed_range pages;
	double dpi;
	struct ed_render_limits limits;
	uint64_t max_stdin;
	const char *password;
	const char *rules_path; /* extra rules; the built-in set always runs */
	bool force;
	/* several processes on one database: a page is claimed before it is
	 * worked on, for this long (renewed while the run goes on; 0 = 300
	 * s); a page another live process claimed is left to it */
	double lease_s;
	/* --schema: fill it from each page read (ED_EXTRACT_PAGE) or, once
	 * its pages are stored, from the whole document; needs a model */
	const struct ed_extractor *extract;
	enum ed_extract_scope extract_scope;
	const char *options_json;	    /* recorded with the run */
	volatile sig_atomic_t *interrupted; /* set by cmd/ on SIGINT */
	/* callbacks, all on the thread that calls ed_pipeline_run() */
	void (*on_page)(void *ud, const struct ed_page_result *r);
	void (*on_doc)(void *ud, const char *path,
		       const struct ed_doc_result *r);
	void (*on_progress)(void *ud, const struct ed_progress *p);
	/* --schema with document scope: one call per document after on_doc */
	void (*on_extraction)(void *ud, const struct ed_extract_result *r);
	void *ud;
};

void ed_pipeline_opts_default(struct ed_pipeline_opts *o);

struct ed_pipeline;

/*
 * Open the store, the backend (ED_ECONFIG for a bad checkpoint,
 * ED_EUNAVAIL for an unreachable server) and the rules; start the
 * workers and a run. 0 or ED_E*.
 */
int ed_pipeline_open(struct ed_pipeline **out, const struct ed_pipeline_opts *o,
		     char *err, size_t errlen);
/* Finish the run, stop the workers, close the store and the backend. */
void ed_pipeline_close(struct ed_pipeline *p);
/* The model id of the backend ("" without one). */
const char *ed_pipeline_model_id(const struct ed_pipeline *p);
/* The native engine's decode passes, the tokens they fed and the most
 * sequences one pass decoded together (0 without a native backend). */
void ed_pipeline_decode_stats(struct ed_pipeline *p, int64_t *steps,
			      int64_t *tokens, int *widest);

/*
 * OCR the inputs ("-" = standard input): every selected page is either
 * found finished in the store or processed by the workers and stored in
 * its own transaction on this thread, then reported through on_page; each
 * document through on_doc when its last page is stored. One bad input
 * never stops the others. Stops early on SIGINT (ED_EINTR: finished pages
 * are committed, pages in flight are dropped) or when the server stays
 * unreachable (ED_EUNAVAIL). Returns 0 or that stop code.
 */
int ed_pipeline_run(struct ed_pipeline *p, const char *const *paths, size_t n,
		    struct ed_run_result *r);

/* Word-level similarity of two texts in [0, 1] (Dice over word multisets,
 * case-folded): the hallucination signal between text layer and model. */
double ed_pipeline_similarity(const char *a, const char *b);

/*
 * The repetition guard: does the tail of text loop? True when the last
 * span characters repeat a period p (1 <= p <= 200) with span >= max(8p,
 * 400). *loop_start receives where the loop begins.
 */
bool ed_pipeline_repeats(const char *text, size_t len, size_t *loop_start);

/* --mode auto looks again when the text layer and the transcription
 * agree less than this. */
#define ED_ESCALATE_SIMILARITY 0.5
/* ... or when the text is small for the resolution the model saw: a
 * median word under this many pixels high, or without a text layer more
 * than this many characters per image token. */
#define ED_SMALL_TEXT_PX	 10.0
#define ED_DENSE_CHARS_PER_TOKEN 4.0

/* Is the page's text small relative to the model's view of it? layer: the
 * text layer (words with boxes), the page height in points and in the
 * model's input pixels; without enough words, the transcription's visible
 * characters per image token decide. */
bool ed_pipeline_small_text(const struct ed_text *layer, double height_pt,
			    int input_height_px, const char *text,
			    int image_tokens);

/* Token budget for a page: grows with the page's area and ink. */
int ed_pipeline_token_budget(double width_pt, double height_pt,
			     double ink_fraction, int cap);

/* Versions of the libraries pipeline/ and below link against. */
void ed_pipeline_versions(char *buf, size_t len);

#endif
