/*
 * xrun.c - the extract command over the store: the selected documents'
 * pages (or whole documents) become tasks, those the store has already
 * for the same schema, model and prompt are reported from it, the rest
 * go to `jobs` workers that call the backend; this thread stores and
 * reports each result in task order. No re-OCR: the text is the stored
 * page text, the image the page re-rendered from the document's path.
 */
#include "pipeline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct xtask {
	int64_t doc_id;
	char *path;
	char sha[65];
	int page_no; /* 0: the document */
	struct ed_page_text *pages;
	size_t npages;
	int64_t cached_id;
	bool done;
	struct ed_extraction res;
};

struct xrun {
	const struct ed_extract_opts *o;
	struct ed_backend *b;
	struct xtask *t;
	size_t n, cap, next;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	int budget;
};

struct collect {
	struct xrun *x;
	int64_t doc_id;
	const char *path, *sha;
	struct ed_page_text *pages;
	size_t n, cap;
	int64_t *ids;
	char **paths, **shas;
	size_t nd, dcap;
	bool oom;
};

static int doc_row(void *ud, int ncol, const char *const *names,
		   const struct ed_store_value *v)
{
	struct collect *c = ud;
	(void)names;
	if (ncol < 3)
		return 0;
	if (c->nd == c->dcap) {
		size_t cap = c->dcap ? 2 * c->dcap : 16;
		int64_t *ni = realloc(c->ids, cap * sizeof *ni);
		char **np, **ns;
		if (ni)
			c->ids = ni;
		np = ni ? realloc(c->paths, cap * sizeof *np) : NULL;
		if (np)
			c->paths = np;
		ns = np ? realloc(c->shas, cap * sizeof *ns) : NULL;
		if (!ns) {
			c->oom = true;
			return 1;
		}
		c->shas = ns;
		c->dcap = cap;
	}
	c->ids[c->nd] = v[0].i;
	c->shas[c->nd] = strdup(v[1].s ? v[1].s : "");
	c->paths[c->nd] = strdup(v[2].type == ED_STORE_TEXT ? v[2].s : "");
	if (!c->shas[c->nd] || !c->paths[c->nd]) {
		free(c->shas[c->nd]);
		free(c->paths[c->nd]);
		c->oom = true;
		return 1;
	}
	c->nd++;
	return 0;
}

static int page_row(void *ud, int ncol, const char *const *names,
		    const struct ed_store_value *v)
{
	struct collect *c = ud;
	(void)names;
	if (ncol < 3)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 8;
		struct ed_page_text *np = realloc(c->pages, cap * sizeof *np);
		if (!np) {
			c->oom = true;
			return 1;
		}
		c->pages = np;
		c->cap = cap;
	}
	c->pages[c->n].page_id = v[0].i;
	c->pages[c->n].page_no = (int)v[1].i;
	c->pages[c->n].text = strdup(v[2].type == ED_STORE_TEXT ? v[2].s : "");
	if (!c->pages[c->n].text) {
		c->oom = true;
		return 1;
	}
	c->n++;
	return 0;
}

static struct xtask *add_task(struct xrun *x)
{
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 32;
		struct xtask *nt = realloc(x->t, cap * sizeof *nt);
		if (!nt)
			return NULL;
		x->t = nt;
		x->cap = cap;
	}
	memset(&x->t[x->n], 0, sizeof x->t[x->n]);
	return &x->t[x->n++];
}

static void free_tasks(struct xrun *x)
{
	for (size_t i = 0; i < x->n; i++) {
		struct xtask *t = &x->t[i];
		for (size_t k = 0; k < t->npages; k++)
			free((char *)t->pages[k].text);
		free(t->pages);
		free(t->path);
		ed_extraction_release(&t->res);
	}
	free(x->t);
}

/* The page image for --from image: the document at its stored path, the
 * same file (sha256) the text came from. */
static int page_image(const struct xrun *x, const struct xtask *t,
		      struct ed_prepared *pr, char *err, size_t errlen)
{
	const struct ed_extract_opts *o = x->o;
	struct ed_source src;
	struct ed_doc *doc = NULL;
	struct ed_image img;
	int rc;

	memset(pr, 0, sizeof *pr);
	if ((rc = ed_pipeline_source_open(&src, t->path, 0, err, errlen)))
		return rc;
	if (strcmp(src.sha256, t->sha)) {
		ed_pipeline_source_release(&src);
		return ed_err(err, errlen, ED_ENOENT,
			      "'%s' has changed since it was read", t->path);
	}
	rc = ed_pipeline_doc_open(&src, o->password, &o->limits, &doc, err,
				  errlen);
	if (!rc)
		rc = ed_pipeline_render_page(doc, t->page_no - 1, NULL, 0,
					     ED_PIPELINE_NOMINAL_DPI, &o->tile,
					     &img, err, errlen);
	if (!rc) {
		rc = ed_pipeline_image_prepare(x->b, &o->tile, &img, pr, err,
					       errlen);
		ed_render_image_release(&img);
	}
	ed_render_doc_close(doc);
	ed_pipeline_source_release(&src);
	return rc;
}

static void *worker(void *arg)
{
	struct xrun *x = arg;
	const struct ed_extract_opts *o = x->o;

	for (;;) {
		struct xtask *t = NULL;
		struct ed_gen_params g = o->gen;
		pthread_mutex_lock(&x->mu);
		while (x->next < x->n && !x->stop && x->t[x->next].cached_id)
			x->next++;
		if (x->next < x->n && !x->stop)
			t = &x->t[x->next++];
		pthread_mutex_unlock(&x->mu);
		if (!t)
			return NULL;
		g.max_new_tokens = x->budget;
		if (o->from == ED_EXTRACT_IMAGE) {
			struct ed_prepared pr;
			char err[256];
			int rc = page_image(x, t, &pr, err, sizeof err);
			if (rc) {
				snprintf(t->res.status, sizeof t->res.status,
					 "error");
				snprintf(t->res.error, sizeof t->res.error,
					 "%s", err);
				t->res.code = rc;
			} else {
				ed_pipeline_extract(o->x, x->b, NULL, &pr,
						    false, &g, &t->res);
				ed_pipeline_image_release(&pr);
			}
		} else if (t->page_no) {
			ed_pipeline_extract(o->x, x->b, t->pages[0].text, NULL,
					    false, &g, &t->res);
		} else {
			struct ed_buf all;
			ed_buf_init(&all, 0);
			for (size_t k = 0; k < t->npages; k++)
				if (ed_buf_printf(&all, "%s%s", k ? "\n\n" : "",
						  t->pages[k].text))
					break;
			ed_pipeline_extract(o->x, x->b,
					    all.data ? all.data : "", NULL,
					    true, &g, &t->res);
			ed_buf_release(&all);
		}
		pthread_mutex_lock(&x->mu);
		t->done = true;
		if (t->res.code == ED_EUNAVAIL || t->res.code == ED_EINTR)
			x->stop = true;
		pthread_cond_broadcast(&x->cv);
		pthread_mutex_unlock(&x->mu);
	}
}

static void count(struct ed_extract_summary *s, const char *status, int code)
{
	if (!strcmp(status, "done"))
		s->done++;
	else if (!strcmp(status, "incomplete"))
		s->incomplete++;
	else if (!strcmp(status, "invalid"))
		s->invalid++;
	else {
		s->failed++;
		if (!s->first_code)
			s->first_code = code;
	}
}

/* Store task t and report it. */
static int finish(struct xrun *x, struct ed_store *st, struct xtask *t,
		  const char *model_id, struct ed_extract_summary *sum,
		  char *err, size_t errlen)
{
	const struct ed_extract_opts *o = x->o;
	const struct ed_schema *sc = ed_pipeline_extractor_schema(o->x);
	struct ed_extract_result r = {t->path, t->sha, t->page_no, NULL,
				      NULL,    NULL,   false};
	struct ed_store_extraction e = {0};
	struct ed_arena a;
	int rc = 0;

	if (t->cached_id) {
		struct ed_extraction g;
		rc = ed_pipeline_extraction_read(st, t->cached_id, &g, err,
						 errlen);
		r.status = g.status;
		r.json = g.json;
		r.error = g.error[0] ? g.error : NULL;
		r.cached = true;
		sum->cached++;
		count(sum, r.status, 0);
		if (o->on_result && !rc)
			o->on_result(o->ud, &r);
		ed_extraction_release(&g);
		return rc;
	}
	if (t->res.code == ED_EINTR)
		return 0; /* not stored: the next run does it */
	ed_arena_init(&a, 0);
	e.doc_id = t->doc_id;
	e.page_no = t->page_no;
	e.page_id = t->page_no ? t->pages[0].page_id : 0;
	e.schema_sha256 = ed_schema_sha256(sc);
	e.schema_title = ed_schema_title(sc);
	e.model_id = model_id;
	e.prompt_id =
	    ed_pipeline_extractor_prompt_id(o->x, o->from == ED_EXTRACT_IMAGE);
	e.status = t->res.status;
	e.json = t->res.json;
	e.error = t->res.error[0] ? t->res.error : NULL;
	e.source = o->from == ED_EXTRACT_IMAGE ? "image" : "text";
	e.attempts = t->res.attempts;
	e.tokens_in = t->res.tokens_in;
	e.tokens_out = t->res.tokens_out;
	e.ms = t->res.ms;
	if (!strcmp(t->res.status, "done") &&
	    ed_pipeline_extract_fields(t->res.json, t->pages, t->npages, &a,
				       &e.fields, &e.nfields))
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
	if (!rc)
		rc = ed_store_extraction_put(st, &e, NULL, err, errlen);
	ed_arena_release(&a);
	if (rc)
		return rc;
	count(sum, t->res.status, t->res.code);
	r.status = t->res.status;
	r.json = t->res.json;
	r.error = t->res.error[0] ? t->res.error : NULL;
	if (o->on_result)
		o->on_result(o->ud, &r);
	return 0;
}

int ed_pipeline_extract_run(const struct ed_extract_opts *o,
			    struct ed_extract_summary *sum, char *err,
			    size_t errlen)
{
	struct xrun x = {.o = o};
	struct collect docs = {0};
	struct ed_store *st = NULL;
	pthread_t *th = NULL;
	int nth = 0, rc, stop = 0;
	char model_id[256];
	bool work = false;

	memset(sum, 0, sizeof *sum);
	pthread_mutex_init(&x.mu, NULL);
	pthread_cond_init(&x.cv, NULL);
	if ((rc = ed_store_open(&st, o->db_path, 0, err, errlen)))
		goto out;
	/* the documents */
	if (o->ndocs) {
		for (size_t i = 0; i < o->ndocs && !rc; i++) {
			int64_t id;
			if ((rc = ed_store_doc_find(st, o->docs[i], &id, err,
						    errlen)))
				break;
			rc = ed_store_docs(st, id, doc_row, &docs, err, errlen);
		}
	} else {
		rc = ed_store_docs(st, 0, doc_row, &docs, err, errlen);
	}
	if (!rc && docs.oom)
		rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
	if (rc)
		goto out;
	/* the backend's id is part of the resume key: open it first */
	{
		struct ed_backend_opts bo = {
		    .model_dir = o->model_dir,
		    .threads = o->threads,
		    .server_url = o->server_url,
		    .model_name = o->model_name,
		    .api_key = o->api_key,
		    .ca_file = o->ca_file,
		    .jobs = o->jobs > 0 ? o->jobs : 1,
		    .timeout_s = o->timeout_s,
		    .retries = o->retries,
		    .retry_wait_s = o->retry_wait_s,
		    .chat_template = o->chat_template,
		    .template_variant = o->template_variant,
		    .text_model_ok = o->from == ED_EXTRACT_TEXT};
		if (!o->model_dir && !o->server_url) {
			rc = ed_err(err, errlen, ED_ECONFIG,
				    "no model: give --model DIR or --server "
				    "URL (or ERNIE_DOC_MODEL, "
				    "ERNIE_DOC_SERVER)");
			goto out;
		}
		if ((rc = ed_backend_open(&x.b, &bo, err, errlen)))
			goto out;
		snprintf(model_id, sizeof model_id, "%s",
			 ed_backend_model_id(x.b));
	}
	/* the tasks */
	for (size_t d = 0; d < docs.nd; d++) {
		struct collect pc = {0};
		if ((rc = ed_store_doc_pages(st, docs.ids[d], page_row, &pc,
					     err, errlen)) ||
		    pc.oom) {
			for (size_t k = 0; k < pc.n; k++)
				free((char *)pc.pages[k].text);
			free(pc.pages);
			if (!rc)
				rc = ed_err(err, errlen, ED_ENOMEM,
					    "out of memory");
			goto out;
		}
		for (size_t k = 0; k < pc.n; k++) {
			bool page = o->scope == ED_EXTRACT_PAGE;
			struct xtask *t;
			struct ed_store_extraction key = {0};
			if (!page && k > 0)
				break;
			if (page && !*pc.pages[k].text)
				continue; /* a blank page says nothing */
			if (!(t = add_task(&x))) {
				rc = ed_err(err, errlen, ED_ENOMEM,
					    "out of memory");
				break;
			}
			t->doc_id = docs.ids[d];
			t->path = strdup(docs.paths[d]);
			snprintf(t->sha, sizeof t->sha, "%s", docs.shas[d]);
			t->page_no = page ? pc.pages[k].page_no : 0;
			t->npages = page ? 1 : pc.n;
			t->pages = malloc(t->npages * sizeof *t->pages);
			if (!t->path || !t->pages) {
				rc = ed_err(err, errlen, ED_ENOMEM,
					    "out of memory");
				break;
			}
			for (size_t q = 0; q < t->npages; q++) {
				size_t src = page ? k : q;
				t->pages[q] = pc.pages[src];
				pc.pages[src].text = NULL; /* moved */
			}
			key.doc_id = t->doc_id;
			key.page_no = t->page_no;
			key.schema_sha256 = ed_schema_sha256(
			    ed_pipeline_extractor_schema(o->x));
			key.model_id = model_id;
			key.prompt_id = ed_pipeline_extractor_prompt_id(
			    o->x, o->from == ED_EXTRACT_IMAGE);
			if (!o->force &&
			    (rc = ed_store_extraction_lookup(
				 st, &key, &t->cached_id, err, errlen)))
				break;
			work |= !t->cached_id;
		}
		for (size_t k = 0; k < pc.n; k++)
			free((char *)pc.pages[k].text);
		free(pc.pages);
		if (rc)
			goto out;
	}
	x.budget = o->gen.max_new_tokens > 0
		       ? o->gen.max_new_tokens
		       : ed_pipeline_extractor_budget(o->x, 0);
	/* the workers */
	if (work) {
		int n = o->jobs > 0 ? o->jobs : 1;
		th = calloc((size_t)n, sizeof *th);
		if (!th) {
			rc = ed_err(err, errlen, ED_ENOMEM, "out of memory");
			goto out;
		}
		for (; nth < n; nth++)
			if (pthread_create(&th[nth], NULL, worker, &x))
				break;
		if (!nth) {
			rc = ed_err(err, errlen, ED_ENOMEM,
				    "cannot start a worker");
			goto out;
		}
	}
	for (size_t i = 0; i < x.n; i++) {
		struct xtask *t = &x.t[i];
		pthread_mutex_lock(&x.mu);
		while (!t->cached_id && !t->done && !x.stop) {
			struct timespec ts;
			if (o->interrupted && *o->interrupted) {
				x.stop = true;
				break;
			}
			/* wake now and then to see an interrupt */
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&x.cv, &x.mu, &ts);
		}
		pthread_mutex_unlock(&x.mu);
		if (!t->cached_id && !t->done)
			break; /* stopped: what is left waits for the next run
				*/
		if (!t->cached_id &&
		    (t->res.code == ED_EUNAVAIL || t->res.code == ED_EINTR)) {
			stop = t->res.code;
			break;
		}
		if ((rc = finish(&x, st, t, model_id, sum, err, errlen)))
			break;
		if (o->interrupted && *o->interrupted) {
			pthread_mutex_lock(&x.mu);
			x.stop = true;
			pthread_mutex_unlock(&x.mu);
		}
	}
	if (!stop && x.stop)
		stop = ED_EINTR;
	pthread_mutex_lock(&x.mu);
	x.stop = true;
	pthread_mutex_unlock(&x.mu);
	if (x.b && stop == ED_EINTR)
		ed_backend_cancel(x.b);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	if (!rc && stop) {
		sum->stop_code = stop;
		rc = stop;
		ed_err(err, errlen, stop, "%s",
		       stop == ED_EINTR ? "interrupted" : "server unavailable");
	}
out:
	free(th);
	free_tasks(&x);
	for (size_t d = 0; d < docs.nd; d++) {
		free(docs.paths[d]);
		free(docs.shas[d]);
	}
	free(docs.ids);
	free(docs.paths);
	free(docs.shas);
	ed_backend_close(x.b);
	ed_store_close(st);
	pthread_cond_destroy(&x.cv);
	pthread_mutex_destroy(&x.mu);
	return rc;
}
