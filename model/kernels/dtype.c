/*
 * dtype.c - the element types' names and sizes (safetensors' spelling,
 * ggml's for the block formats): below both the containers and the
 * kernels that use them.
 */
#include "kernels.h"

#include <string.h>

static const struct {
	const char *name;
	enum ed_dtype dt;
	size_t size;
} dtypes[] = {
    {"F64", ED_DT_F64, 8},   {"F32", ED_DT_F32, 4}, {"F16", ED_DT_F16, 2},
    {"BF16", ED_DT_BF16, 2}, {"I64", ED_DT_I64, 8}, {"I32", ED_DT_I32, 4},
    {"I16", ED_DT_I16, 2},   {"I8", ED_DT_I8, 1},   {"U8", ED_DT_U8, 1},
    {"BOOL", ED_DT_BOOL, 1},
};

size_t ed_model_dtype_size(enum ed_dtype dt)
{
	for (size_t i = 0; i < ED_ARRAY_LEN(dtypes); i++)
		if (dtypes[i].dt == dt)
			return dtypes[i].size;
	return 0;
}

const char *ed_model_dtype_name(enum ed_dtype dt)
{
	switch (dt) {
	case ED_DT_Q8_0: return "Q8_0";
	case ED_DT_Q4_0: return "Q4_0";
	case ED_DT_Q4_K: return "Q4_K";
	case ED_DT_Q6_K: return "Q6_K";
	case ED_DT_Q4_1: return "Q4_1";
	case ED_DT_Q5_0: return "Q5_0";
	case ED_DT_Q5_1: return "Q5_1";
	case ED_DT_IQ4_NL: return "IQ4_NL";
	case ED_DT_Q2_K: return "Q2_K";
	case ED_DT_Q3_K: return "Q3_K";
	case ED_DT_Q5_K: return "Q5_K";
	case ED_DT_IQ4_XS: return "IQ4_XS";
	default: break;
	}
	for (size_t i = 0; i < ED_ARRAY_LEN(dtypes); i++)
		if (dtypes[i].dt == dt)
			return dtypes[i].name;
	return "?";
}

int ed_model_dtype_parse(const char *name)
{
	for (size_t i = 0; i < ED_ARRAY_LEN(dtypes); i++)
		if (strcmp(name, dtypes[i].name) == 0)
			return (int)dtypes[i].dt;
	return -1;
}
