/*
 * pool.c - a persistent thread pool: workers are created once and wait for
 * jobs; a job is a range split into one contiguous piece per thread, or
 * (ed_pool_for_each) items claimed one at a time from a shared counter,
 * which keeps threads busy when one runs slower (a shared machine); each
 * item is then computed whole by one thread, so results do not depend on
 * scheduling either way. Workers spin briefly before sleeping, because
 * decode issues many short jobs back to back.
 */
#include "kernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct ed_pool {
	int n;
	pthread_t *th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_uint gen;    /* bumped for every job */
	atomic_int pending; /* workers still running the job */
	atomic_bool quit;
	ed_pool_fn fn;
	void *ctx;
	int64_t total, grain;
	bool each;	   /* items from the counter */
	atomic_llong next; /* the next unclaimed item */
};

struct worker_arg {
	struct ed_pool *p;
	int tid;
};

static void run_range(struct ed_pool *p, int tid)
{
	if (p->each) {
		int64_t i;
		while ((i = atomic_fetch_add_explicit(
			    &p->next, 1, memory_order_relaxed)) < p->total)
			p->fn(p->ctx, i, i + 1, tid);
		return;
	}
	int64_t chunks = (p->total + p->grain - 1) / p->grain;
	int64_t per = chunks / p->n, extra = chunks % p->n;
	int64_t c0 = tid * per + (tid < extra ? tid : extra);
	int64_t c1 = c0 + per + (tid < extra ? 1 : 0);
	int64_t b = c0 * p->grain, e = c1 * p->grain;

	if (e > p->total)
		e = p->total;
	if (b < e)
		p->fn(p->ctx, b, e, tid);
}

/*
 * Kernels run with denormals flushed to zero (MXCSR FTZ and DAZ): a
 * product with a denormal operand takes a microcode assist of ~100
 * cycles, and activations such as quick-GELU of a large negative input
 * are denormal; the vision tower's MLP ran 1.8x slower with them. The
 * values lost are below 1.2e-38. Workers set it once; the calling thread
 * gets its own mode back when a job ends.
 */
#if defined(__x86_64__)
#include <immintrin.h>
#define FLUSH_BITS 0x8040u /* FTZ | DAZ */
static unsigned flush_on(void)
{
	unsigned old = _mm_getcsr();

	_mm_setcsr(old | FLUSH_BITS);
	return old;
}
static void flush_restore(unsigned old)
{
	_mm_setcsr(old);
}
#else
static unsigned flush_on(void)
{
	return 0;
}
static void flush_restore(unsigned old)
{
	(void)old;
}
#endif

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct ed_pool *p = wa->p;
	int tid = wa->tid;
	unsigned seen = 0;

	free(wa);
	flush_on();
	for (;;) {
		unsigned g;
		int spins = 0;

		while ((g = atomic_load_explicit(
			    &p->gen, memory_order_acquire)) == seen &&
		       !atomic_load(&p->quit)) {
			if (++spins < 200000)
				continue;
			pthread_mutex_lock(&p->mu);
			while (atomic_load(&p->gen) == seen &&
			       !atomic_load(&p->quit))
				pthread_cond_wait(&p->cv, &p->mu);
			pthread_mutex_unlock(&p->mu);
		}
		if (atomic_load(&p->quit))
			return NULL;
		seen = g;
		run_range(p, tid);
		atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
	}
}

int ed_pool_new(struct ed_pool **out, int nthreads)
{
	struct ed_pool *p;

	*out = NULL;
	if (nthreads < 1 || nthreads > 256)
		return ED_EINVAL;
	p = calloc(1, sizeof *p);
	if (!p)
		return ED_ENOMEM;
	p->n = nthreads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	atomic_init(&p->gen, 0);
	atomic_init(&p->pending, 0);
	atomic_init(&p->quit, false);
	atomic_init(&p->next, 0);
	p->th = calloc((size_t)nthreads, sizeof *p->th);
	if (!p->th) {
		free(p);
		return ED_ENOMEM;
	}
	for (int i = 1; i < nthreads; i++) {
		struct worker_arg *wa = malloc(sizeof *wa);
		if (wa) {
			wa->p = p; /* before the thread can read it */
			wa->tid = i;
		}
		if (!wa || pthread_create(&p->th[i], NULL, worker, wa)) {
			free(wa);
			p->n = i;
			ed_pool_free(p);
			return ED_ENOMEM;
		}
	}
	*out = p;
	return 0;
}

void ed_pool_free(struct ed_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->quit, true);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 1; i < p->n; i++)
		pthread_join(p->th[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->th);
	free(p);
}

int ed_pool_threads(const struct ed_pool *p)
{
	return p ? p->n : 1;
}

static void launch(struct ed_pool *p, int64_t n, int64_t grain, ed_pool_fn fn,
		   void *ctx, bool each)
{
	unsigned mode;

	if (n <= 0)
		return;
	if (grain < 1)
		grain = 1;
	mode = flush_on();
	if (!p || p->n == 1 || n <= grain) {
		fn(ctx, 0, n, 0);
		flush_restore(mode);
		return;
	}
	p->fn = fn;
	p->ctx = ctx;
	p->total = n;
	p->grain = grain;
	p->each = each;
	atomic_store(&p->next, 0);
	atomic_store(&p->pending, p->n - 1);
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	run_range(p, 0);
	while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
		;
	flush_restore(mode);
}

void ed_pool_for(struct ed_pool *p, int64_t n, int64_t grain, ed_pool_fn fn,
		 void *ctx)
{
	launch(p, n, grain, fn, ctx, false);
}

void ed_pool_for_each(struct ed_pool *p, int64_t n, ed_pool_fn fn, void *ctx)
{
	launch(p, n, 1, fn, ctx, true);
}
