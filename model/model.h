/*
 * model.h - what model/ offers the rest of ernie-doc. For now: tensors and
 * the safetensors container (mmapped, validated, never copied), which the
 * checkpoint loader builds on and which `tiles --dump` writes.
 *
 * model/ knows tokens and tensors, not documents. It never prints.
 * An open struct ed_st is immutable and may be read from many threads.
 *
 * Usage:
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

#endif
