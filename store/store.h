/*
 * store.h - results in SQLite: documents, runs, pages (one row per resume
 * key), blocks, fields, zooms and the pages_fts full-text index. Schema
 * version in PRAGMA user_version, migrations in order, WAL, busy timeout,
 * one writer. store/ knows SQL, not documents or models; it never prints.
 *
 * Threads: a struct ed_store is one SQLite connection and belongs to one
 * thread at a time.
 *
 * Usage:
 *     struct ed_store *st;
 *     char err[256];
 *     if (ed_store_open(&st, "ernie-doc.db", 0, err, sizeof err))
 *             ... fail (ED_ECREATE) ...
 *     ed_store_doc_put(st, &doc, &doc_id, err, sizeof err);
 *     ed_store_page_lookup(st, &key, true, &page_id, err, sizeof err);
 *     if (!page_id)
 *             ed_store_page_put(st, &page, &page_id, err, sizeof err);
 *     ed_store_close(st);
 */
#ifndef ED_STORE_H
#define ED_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define ED_STORE_SCHEMA_VERSION 5

enum {
	ED_STORE_READONLY = 1, /* open an existing database read-only */
};

struct ed_store;

/*
 * Open (creating and migrating as needed) the database at path. With
 * ED_STORE_READONLY the file must exist and nothing can be written.
 * 0, ED_ECREATE (cannot create/open for writing, not a database, or made by
 * a newer ernie-doc), ED_ENOENT (read-only and missing), ED_EFORMAT
 * (read-only and not an ernie-doc database).
 */
int ed_store_open(struct ed_store **out, const char *path, int flags, char *err,
		  size_t errlen);
void ed_store_close(struct ed_store *st);

/* How long a write waits for another writer's lock (default 5000 ms)
 * before failing with ED_EAGAIN. */
void ed_store_set_busy_timeout(struct ed_store *st, int ms);

/* Versions: "SQLite 3.40.1". */
const char *ed_store_sqlite_version(void);

/* ---- writing ------------------------------------------------------ */

struct ed_store_doc {
	const char *sha256; /* 64 hex digits: the document's identity */
	const char *path;   /* as given, "-" for stdin */
	const char *kind;   /* "pdf", "tiff", "png", "jpeg", "unknown" */
	int64_t bytes;
	int pages;	   /* 0 = unknown */
	const char *title; /* may be NULL */
	const char *error; /* NULL, or why the document could not be read */
};

/* Insert or update by sha256; *id is the row id. 0 or ED_EIO. */
int ed_store_doc_put(struct ed_store *st, const struct ed_store_doc *d,
		     int64_t *id, char *err, size_t errlen);

struct ed_store_run {
	const char *tool_version;
	const char *backend;  /* "none", "native", "remote" */
	const char *model_id; /* "" when no model */
	const char *mode;     /* "ocr", "think" */
	const char *options_json;
};

int ed_store_run_begin(struct ed_store *st, const struct ed_store_run *r,
		       int64_t *id, char *err, size_t errlen);
int ed_store_run_end(struct ed_store *st, int64_t id, char *err, size_t errlen);

/* The resume key. Pages served without a model use model_id "" and
 * prompt_id "". */
struct ed_store_key {
	int64_t doc_id;
	int page_no; /* 1-based */
	const char *mode;
	const char *model_id;
	const char *prompt_id;
};

/*
 * Is this page already finished? *page_id is the id of a done or blank
 * row with this key, else of one from a no-model run for the same
 * document, page and mode; rows served from the text layer count only
 * when text_layer_ok. 0 when there is none. 0 or ED_EIO.
 */
int ed_store_page_lookup(struct ed_store *st, const struct ed_store_key *k,
			 bool text_layer_ok, int64_t *page_id, char *err,
			 size_t errlen);

/* Page statuses. */
#define ED_STORE_DONE	     "done"
#define ED_STORE_BLANK	     "blank"
#define ED_STORE_NEEDS_MODEL "needs-model"
#define ED_STORE_ERROR	     "error"

/* A cell of a table block (0-based row and column). */
struct ed_store_cell {
	int row, col;
	bool header;
	const char *text;
};

/* A block of a page's Markdown: "heading" (level 1-6), "paragraph",
 * "list", "table" (html and cells), "formula", "figure", "code". */
struct ed_store_block {
	const char *kind;
	int level;
	const char *text, *html, *bbox;
	const struct ed_store_cell *cells;
	size_t ncells;
};

/* An extraction: rule name, value, and its byte span in the page text. */
struct ed_store_field {
	const char *name, *value, *rule;
	int64_t start, end;
};

/* A look at a region of the page (the zoom tool): its step, its box on
 * the 0-1000 scale of the page image, the model's label, the crop's size
 * in pixels. */
struct ed_store_zoom {
	int step;
	double x1, y1, x2, y2;
	const char *label;
	int width, height;
};

struct ed_store_page {
	struct ed_store_key key;
	int64_t run_id;
	const char *source; /* "text-layer", "model", "raster" */
	const char *status; /* ED_STORE_DONE, ... */
	double width_pt, height_pt, dpi;
	int grid_h, grid_w, image_tokens;
	const char *text, *markdown, *reasoning, *finish_reason, *error;
	int64_t tokens_in, tokens_out;
	double ms_render, ms_encode, ms_prefill, ms_decode;
	const char *guard;   /* guard verdicts, e.g. "repetition,retried" */
	int attempts;	     /* model calls made for the page */
	bool has_similarity; /* text layer vs model text, 0..1 */
	double similarity;
	const struct ed_store_block *blocks;
	size_t nblocks;
	const struct ed_store_field *fields;
	size_t nfields;
	const struct ed_store_zoom *zooms;
	size_t nzooms;
	bool tools;	 /* the zoom tool was offered */
	int tool_errors; /* malformed tool calls answered */
	/* escalation (--mode auto): the pass that made this result ("ocr",
	 * "think-zoom"), whether it is the chosen one (-1: not applicable),
	 * and the other pass's result, stored in the same transaction */
	const char *pass;
	int chosen;
	const struct ed_store_page *alt;
};

/*
 * Store one page in one transaction: the row with the same key is
 * replaced, unfinished rows (needs-model, error) for the same document,
 * page and mode are dropped, the full-text index follows by trigger.
 * A page is either fully committed or absent. 0, ED_EAGAIN (another
 * writer held the database past the busy timeout) or ED_EIO.
 */
int ed_store_page_put(struct ed_store *st, const struct ed_store_page *p,
		      int64_t *id, char *err, size_t errlen);

/* ---- reading ------------------------------------------------------ */

enum ed_store_type {
	ED_STORE_NULL,
	ED_STORE_INT,
	ED_STORE_REAL,
	ED_STORE_TEXT,
	ED_STORE_BLOB,
};

struct ed_store_value {
	enum ed_store_type type;
	int64_t i;
	double r;
	const char *s; /* TEXT (UTF-8, NUL-terminated) or BLOB bytes */
	size_t n;
};

/*
 * Row callback: column names and values are valid only during the call.
 * Return non-zero to stop early.
 */
typedef int (*ed_store_row_fn)(void *ud, int ncol, const char *const *names,
			       const struct ed_store_value *vals);

/*
 * Run read-only SQL (one or more statements; rows of each go to cb, a
 * statement boundary is signalled by a call with ncol = -1). Statements
 * that would write are refused before they run. 0, ED_EFORMAT (SQL error
 * or a writing statement, with SQLite's message), ED_EIO.
 */
int ed_store_query(struct ed_store *st, const char *sql, ed_store_row_fn cb,
		   void *ud, char *err, size_t errlen);

/*
 * Full-text search ranked by bm25: rows (document, path, page, score,
 * snippet) with the match wrapped in open/close. terms is FTS5 query
 * syntax; plain words that are not valid syntax are searched as phrases.
 * 0, ED_EFORMAT (bad query), ED_EIO.
 */
int ed_store_search(struct ed_store *st, const char *terms, int limit,
		    const char *open, const char *close, ed_store_row_fn cb,
		    void *ud, char *err, size_t errlen);

/*
 * One stored page (one row: id, page_no, status, source, text, markdown,
 * error, width, height, dpi, ms_render, reasoning, finish_reason,
 * tokens_in, tokens_out, guard, attempts, text_similarity) to cb. 0 or
 * ED_EIO (no row: cb is not called).
 */
int ed_store_page_get(struct ed_store *st, int64_t id, ed_store_row_fn cb,
		      void *ud, char *err, size_t errlen);

/*
 * Find one document by id, sha256 prefix (6+ hex digits) or path (exact,
 * else unique basename). 0 and *id, ED_ENOENT (none), ED_EINVAL (several).
 */
int ed_store_doc_find(struct ed_store *st, const char *selector, int64_t *id,
		      char *err, size_t errlen);

/*
 * The document (one row: id, sha256, path, kind, bytes, pages, title,
 * error, added_at) then its finished pages in order, the newest result for
 * each page number (page_no, status, source, mode, model_id, text,
 * markdown, reasoning, width, height): two statements to cb, separated by
 * an ncol = -1 call.
 */
int ed_store_doc_export(struct ed_store *st, int64_t id, ed_store_row_fn cb,
			void *ud, char *err, size_t errlen);

/* ---- claims: several processes on one database ------------------ */

/*
 * Claim the page of key k for owner (a string unique to the process)
 * until lease_s seconds from now, unless another owner holds a claim
 * that has not lapsed: *got says which. Renew extends every claim of
 * owner; release drops one, drop all of owner's. 0, ED_EAGAIN (locked
 * past the busy timeout), ED_EIO.
 */
int ed_store_claim(struct ed_store *st, const struct ed_store_key *k,
		   const char *owner, double lease_s, bool *got, char *err,
		   size_t errlen);
int ed_store_claims_renew(struct ed_store *st, const char *owner,
			  double lease_s, char *err, size_t errlen);
int ed_store_claim_release(struct ed_store *st, const struct ed_store_key *k,
			   const char *owner, char *err, size_t errlen);
int ed_store_claims_drop(struct ed_store *st, const char *owner, char *err,
			 size_t errlen);
/* The owners holding claims (one row, one column each), to cb. */
int ed_store_claims_owners(struct ed_store *st, ed_store_row_fn cb, void *ud,
			   char *err, size_t errlen);

/* ---- extractions ------------------------------------------------- */

/* Where a leaf of an extracted value was read: its JSON Pointer, its
 * value as text (NULL for null), the page and the byte span in that
 * page's text (-1 when the value does not occur there). */
struct ed_store_xfield {
	int64_t page_id;
	const char *name, *value;
	int64_t start, end;
};

/* An extraction: its resume key (document, page_no 0 for the whole
 * document, schema, model, prompt), outcome and fields. */
struct ed_store_extraction {
	int64_t doc_id;
	int page_no;
	int64_t page_id; /* 0 for a document */
	const char *schema_sha256, *schema_title, *model_id, *prompt_id;
	const char *status; /* "done", "incomplete", "invalid", "error" */
	const char *json;   /* the value (done), the reply otherwise */
	const char *error, *source; /* source: "text" or "image" */
	int attempts;
	int64_t tokens_in, tokens_out;
	double ms;
	const struct ed_store_xfield *fields;
	size_t nfields;
};

/* Is there a finished extraction (any status but error) for the key?
 * *id 0 when none. 0 or ED_EIO. */
int ed_store_extraction_lookup(struct ed_store *st,
			       const struct ed_store_extraction *key,
			       int64_t *id, char *err, size_t errlen);
/* Store it (replacing the row of the same key, and its fields) in one
 * transaction. 0, ED_EIO, ED_EAGAIN. */
int ed_store_extraction_put(struct ed_store *st,
			    const struct ed_store_extraction *e, int64_t *id,
			    char *err, size_t errlen);
/* One extraction row (status, json, error, schema_title, page_no) to cb.
 * 0 or ED_EIO. */
int ed_store_extraction_get(struct ed_store *st, int64_t id, ed_store_row_fn cb,
			    void *ud, char *err, size_t errlen);
/* The documents (id, sha256, path, kind, pages) in the store, or the one
 * of id when id > 0, to cb. 0 or ED_EIO. */
int ed_store_docs(struct ed_store *st, int64_t id, ed_store_row_fn cb, void *ud,
		  char *err, size_t errlen);
/* A document's pages as export reads them, the newest finished result of
 * each page number (page_id, page_no, text), to cb. 0 or ED_EIO. */
int ed_store_doc_pages(struct ed_store *st, int64_t doc_id, ed_store_row_fn cb,
		       void *ud, char *err, size_t errlen);
/* A document's extractions (page_no, schema_title, schema_sha256,
 * model_id, prompt_id, status, json, created), to cb. 0 or ED_EIO. */
int ed_store_doc_extractions(struct ed_store *st, int64_t doc_id,
			     ed_store_row_fn cb, void *ud, char *err,
			     size_t errlen);

/* ---- merging ------------------------------------------------------ */

struct ed_store_merge_stats {
	int64_t docs_added;
	int64_t pages_added;	/* rows new to this store */
	int64_t pages_replaced; /* unfinished rows a finished one replaced */
	int64_t pages_skipped;	/* already here, or superseded here */
	int64_t runs_added;
};

/*
 * Merge the database at src_path (schema 1 or newer, never written) into
 * st in one transaction: documents by sha256, runs, and every page whose
 * resume key is not here yet, with its blocks, cells, fields and zooms.
 * A finished page replaces an unfinished one (needs-model, error) for the
 * same document, page and mode; nothing is stored twice, so merging the
 * same file again adds nothing. stats (may be NULL) receives the counts.
 * 0, ED_ENOENT (missing), ED_EFORMAT (not an ernie-doc database, or a
 * newer one), ED_EAGAIN (locked), ED_EIO.
 */
int ed_store_merge(struct ed_store *st, const char *src_path,
		   struct ed_store_merge_stats *stats, char *err,
		   size_t errlen);

#endif
