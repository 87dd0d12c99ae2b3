/*
 * fuzz.h - the standalone driver every fuzz target shares: built with
 * -fsanitize=fuzzer (clang) the target is a libFuzzer target; built by
 * `make check` (gcc) main() replays each file of the corpus directories
 * given on the command line through LLVMFuzzerTestOneInput and prints
 * "<name>: N passed, 0 failed". A crash or a sanitizer report fails it.
 */
#ifndef ED_FUZZ_H
#define ED_FUZZ_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef ED_LIBFUZZER
static unsigned char *corpus_data[256];
static size_t corpus_len[256];
static int corpus_n;

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	if (!f)
		return 0;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		LLVMFuzzerTestOneInput(buf, (size_t)n);
		if (corpus_n < 256) {
			corpus_data[corpus_n] = buf;
			corpus_len[corpus_n++] = (size_t)n;
			buf = NULL;
		}
	}
	free(buf);
	fclose(f);
	return 1;
}

/*
 * With ED_FUZZ_ITERS=N, also run N random mutations (bit flips, byte
 * runs, truncations, splices of interesting values) of the corpus files:
 * a poor man's fuzzer for machines without libFuzzer. ED_FUZZ_SEED picks
 * the sequence.
 */

static uint64_t fz_state = 88172645463325252ull;
static uint64_t fz_rand(void)
{
	fz_state ^= fz_state << 13;
	fz_state ^= fz_state >> 7;
	fz_state ^= fz_state << 17;
	return fz_state;
}

static void mutate_run(long iters)
{
	for (long it = 0; it < iters && corpus_n; it++) {
		int k = (int)(fz_rand() % (uint64_t)corpus_n);
		size_t n = corpus_len[k], cap = n + 64;
		unsigned char *b = malloc(cap);
		int edits = 1 + (int)(fz_rand() % 8);

		memcpy(b, corpus_data[k], n);
		for (int e = 0; e < edits && n; e++) {
			size_t at = (size_t)(fz_rand() % n);
			switch (fz_rand() % 5) {
			case 0:
				b[at] ^= (unsigned char)(1u << (fz_rand() % 8));
				break;
			case 1: b[at] = (unsigned char)fz_rand(); break;
			case 2: n = at + 1; break; /* truncate */
			case 3: {
				static const unsigned char v[] = {
				    0, 0xff, 0x7f, 0x80, '0', '9', '"', '{'};
				b[at] = v[fz_rand() % sizeof v];
				break;
			}
			case 4:
				if (n + 8 <= cap) {
					memmove(b + at + 4, b + at, n - at);
					memset(b + at, 0xff, 4);
					n += 4;
				}
				break;
			}
		}
		LLVMFuzzerTestOneInput(b, n);
		free(b);
	}
}

static int fuzz_main(const char *name, int argc, char **argv)
{
	int files = 0;
	const char *iters = getenv("ED_FUZZ_ITERS"),
		   *seed = getenv("ED_FUZZ_SEED");

	for (int i = 1; i < argc; i++) {
		struct stat sb;
		DIR *d;
		struct dirent *e;

		if (stat(argv[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
			files += replay_file(argv[i]);
			continue;
		}
		if (!(d = opendir(argv[i]))) {
			fprintf(stderr, "%s: cannot open %s\n", name, argv[i]);
			return 2;
		}
		while ((e = readdir(d))) {
			char p[4096];
			if (e->d_name[0] == '.')
				continue;
			snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
			files += replay_file(p);
		}
		closedir(d);
	}
	if (seed)
		fz_state ^= strtoull(seed, NULL, 10) * 2654435761ull;
	if (iters)
		mutate_run(strtol(iters, NULL, 10));
	for (int i = 0; i < corpus_n; i++)
		free(corpus_data[i]);
	printf("%s: %d passed, 0 failed\n", name, files);
	fflush(stdout);
	return files ? 0 : 2;
}
#define FUZZ_MAIN(name)                                                        \
	int main(int argc, char **argv)                                        \
	{                                                                      \
		return fuzz_main(name, argc, argv);                            \
	}
#else
#define FUZZ_MAIN(name)
#endif

#endif
