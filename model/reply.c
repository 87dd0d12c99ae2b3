/*
 * reply.c - a model's reply as both backends give it (backend.c's native
 * engine, remote.c's server): releasing one, and the reasoning of
 * thinking mode split from the answer. Below both, so that remote.c
 * needs nothing of backend.c.
 */
#include "model_int.h"

#include <stdlib.h>
#include <string.h>

void ed_response_release(struct ed_response *r)
{
	if (!r)
		return;
	free(r->content);
	free(r->reasoning);
	ed_tool_call_release(&r->call);
	memset(r, 0, sizeof *r);
}

int ed_split_thinking(const char *text, char **reasoning, char **content)
{
	const char *end = strstr(text, "</think>"), *a = text, *c;

	*reasoning = NULL;
	*content = NULL;
	if (!end) {
		*content = strdup(text);
		return *content ? 0 : ED_ENOMEM;
	}
	while (*a == ' ' || *a == '\n')
		a++;
	if (strncmp(a, "<think>", 7) == 0)
		a += 7;
	c = end + 8;
	while (*c == '\n' || *c == ' ')
		c++;
	{
		size_t rl = (size_t)(end - a);
		while (rl && (a[rl - 1] == '\n' || a[rl - 1] == ' '))
			rl--;
		while (rl && (*a == '\n' || *a == ' '))
			a++, rl--;
		*reasoning = malloc(rl + 1);
		*content = strdup(c);
		if (!*reasoning || !*content) {
			free(*reasoning);
			free(*content);
			*reasoning = *content = NULL;
			return ED_ENOMEM;
		}
		memcpy(*reasoning, a, rl);
		(*reasoning)[rl] = '\0';
	}
	return 0;
}
