/*
 * batch.c - continuous batching for the native backend: one engine
 * thread owns the threads of the model and every active sequence; each
 * step it samples a token for every sequence (its own sampler, stop rules
 * and callback), then feeds them all through one decode pass
 * (ed_session_step_batch: each weight read once per step, the experts
 * the batch chose each once). A finished sequence leaves; a new one's
 * prompt (vision tower, prefill) runs between two steps, and it joins the
 * next. Prompts run between steps rather than beside them: on a machine
 * of two cores both stages want all of them (prefill is bound by
 * arithmetic, decode by memory bandwidth, and each saturates its own
 * limit with every core), and one stream of work keeps every result
 * independent of timing.
 *
 * Callers (the pipeline's workers) hand a generation over and sleep until
 * it is done; callbacks run on the engine thread, one sequence at a time.
 */
#include "model_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct job {
	/* in */
	int slot;
	const struct ed_prompt *p;
	bool cont;
	const struct ed_gen_params *g;
	ed_token_fn cb;
	void *ud;
	struct ed_gen_result *r;
	/* state */
	struct ed_gen G;
	bool begun, done;
	int rc;
	char err[512];
	struct job *next;
};

struct ed_batcher {
	const struct ed_model *m;
	struct ed_session **s;
	bool *busy;
	int n;
	struct ed_pool *pool;
	pthread_t th;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t work, done, free_slot;
	struct job *queue; /* waiting for their prompt to run */
	bool quit;
	int64_t steps, tokens; /* decode passes, tokens they fed */
	int widest;	       /* most sequences in one pass */
};

/* Finish j with rc (the engine thread): the caller may go on. */
static void job_done(struct ed_batcher *b, struct job *j, int rc)
{
	pthread_mutex_lock(&b->mu);
	j->rc = rc;
	j->done = true;
	pthread_cond_broadcast(&b->done);
	pthread_mutex_unlock(&b->mu);
}

static void *engine(void *arg)
{
	struct ed_batcher *b = arg;
	struct job *active[ED_MAX_BATCH * 16];
	int na = 0;

	for (;;) {
		struct job *fresh;
		pthread_mutex_lock(&b->mu);
		while (!b->quit && !b->queue && na == 0)
			pthread_cond_wait(&b->work, &b->mu);
		if (b->quit && na == 0) {
			pthread_mutex_unlock(&b->mu);
			return NULL;
		}
		fresh = b->queue;
		b->queue = NULL;
		pthread_mutex_unlock(&b->mu);
		/* new sequences: their prompts, in the order they came */
		for (struct job *j = fresh, *nx; j; j = nx) {
			nx = j->next;
			j->rc = ed_gen_begin(&j->G, b->s[j->slot], j->p,
					     j->cont, j->g, j->cb, j->ud, j->r,
					     j->err, sizeof j->err);
			if (j->rc)
				job_done(b, j, j->rc);
			else
				active[na++] = j;
		}
		/* a token for every sequence; those not finished step */
		{
			struct ed_session *ss[ED_MAX_BATCH];
			int32_t tok[ED_MAX_BATCH];
			struct job *step[ED_MAX_BATCH * 16];
			int ns = 0, keep = 0;
			for (int i = 0; i < na; i++) {
				struct job *j = active[i];
				int st =
				    ed_gen_next(&j->G, j->err, sizeof j->err);
				if (st == 0)
					step[ns++] = j;
				else
					job_done(b, j, st < 0 ? st : 0);
			}
			/* at most ED_MAX_BATCH a pass; each sequence's numbers
			 * are the same in any pass */
			for (int k0 = 0; k0 < ns; k0 += ED_MAX_BATCH) {
				int k1 = ED_MIN(ns, k0 + ED_MAX_BATCH), rc;
				for (int k = k0; k < k1; k++) {
					ss[k - k0] = b->s[step[k]->slot];
					tok[k - k0] = step[k]->G.next;
				}
				rc = ed_session_step_batch(
				    ss, k1 - k0, tok, step[k0]->err,
				    sizeof step[k0]->err);
				pthread_mutex_lock(&b->mu);
				b->steps++;
				b->tokens += k1 - k0;
				b->widest = ED_MAX(b->widest, k1 - k0);
				pthread_mutex_unlock(&b->mu);
				for (int k = k0; k < k1; k++) {
					struct job *j = step[k];
					if (rc) {
						if (k > k0)
							memcpy(j->err,
							       step[k0]->err,
							       sizeof j->err);
						ed_gen_abort(&j->G);
						job_done(b, j, rc);
						continue;
					}
					ed_gen_stepped(&j->G);
					active[keep++] = j;
				}
			}
			na = keep;
		}
	}
}

int ed_batcher_open(struct ed_batcher **out, const struct ed_model *m,
		    int slots, int threads, char *err, size_t errlen)
{
	struct ed_batcher *b = calloc(1, sizeof *b);
	int rc;

	*out = NULL;
	if (!b)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	if (slots < 1 || slots > ED_MAX_BATCH * 16) {
		free(b);
		return ed_err(err, errlen, ED_EINVAL,
			      "%d sequences at once (at most %d)", slots,
			      ED_MAX_BATCH * 16);
	}
	b->m = m;
	b->n = slots;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->work, NULL);
	pthread_cond_init(&b->done, NULL);
	pthread_cond_init(&b->free_slot, NULL);
	b->s = calloc((size_t)slots, sizeof *b->s);
	b->busy = calloc((size_t)slots, sizeof *b->busy);
	if (!b->s || !b->busy) {
		ed_batcher_close(b);
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	}
	/* the first session owns the threads, the others borrow them */
	for (int i = 0; i < slots; i++)
		if ((rc = ed_session_new(
			 &b->s[i], m,
			 &(struct ed_session_opts){
			     .threads = threads,
			     .pool = i ? ed_session_pool(b->s[0]) : NULL},
			 err, errlen))) {
			ed_batcher_close(b);
			return rc;
		}
	if (pthread_create(&b->th, NULL, engine, b)) {
		ed_batcher_close(b);
		return ed_err(err, errlen, ED_ENOMEM,
			      "cannot start the engine thread");
	}
	b->started = true;
	*out = b;
	return 0;
}

void ed_batcher_close(struct ed_batcher *b)
{
	if (!b)
		return;
	if (b->started) {
		pthread_mutex_lock(&b->mu);
		b->quit = true;
		pthread_cond_broadcast(&b->work);
		pthread_mutex_unlock(&b->mu);
		pthread_join(b->th, NULL);
	}
	/* the owner of the threads last */
	for (int i = b->n - 1; b->s && i >= 0; i--)
		ed_session_free(b->s[i]);
	free(b->s);
	free(b->busy);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->work);
	pthread_cond_destroy(&b->done);
	pthread_cond_destroy(&b->free_slot);
	free(b);
}

int ed_batcher_acquire(struct ed_batcher *b)
{
	int slot = -1;

	pthread_mutex_lock(&b->mu);
	while (slot < 0) {
		for (int i = 0; i < b->n && slot < 0; i++)
			if (!b->busy[i])
				slot = i;
		if (slot < 0)
			pthread_cond_wait(&b->free_slot, &b->mu);
	}
	b->busy[slot] = true;
	pthread_mutex_unlock(&b->mu);
	return slot;
}

void ed_batcher_release(struct ed_batcher *b, int slot)
{
	pthread_mutex_lock(&b->mu);
	b->busy[slot] = false;
	pthread_cond_signal(&b->free_slot);
	pthread_mutex_unlock(&b->mu);
}

struct ed_session *ed_batcher_session(struct ed_batcher *b, int slot)
{
	return b->s[slot];
}

int ed_batcher_run(struct ed_batcher *b, int slot, const struct ed_prompt *p,
		   bool cont, const struct ed_gen_params *g, ed_token_fn cb,
		   void *ud, struct ed_gen_result *r, char *err, size_t errlen)
{
	struct job j = {.slot = slot,
			.p = p,
			.cont = cont,
			.g = g,
			.cb = cb,
			.ud = ud,
			.r = r};
	struct job **tail;

	pthread_mutex_lock(&b->mu);
	for (tail = &b->queue; *tail; tail = &(*tail)->next)
		;
	*tail = &j;
	pthread_cond_signal(&b->work);
	while (!j.done)
		pthread_cond_wait(&b->done, &b->mu);
	pthread_mutex_unlock(&b->mu);
	if (j.rc)
		ed_err(err, errlen, j.rc, "%s", j.err);
	return j.rc;
}

void ed_batcher_stats(struct ed_batcher *b, int64_t *steps, int64_t *tokens,
		      int *widest)
{
	pthread_mutex_lock(&b->mu);
	*steps = b->steps;
	*tokens = b->tokens;
	*widest = b->widest;
	pthread_mutex_unlock(&b->mu);
}
