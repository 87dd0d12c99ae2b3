/*
 * peakrss.c - run a command and report its peak resident set size and
 * CPU time: prints "peakrss: <KiB> KiB" and "cputime: <ms> ms" (user plus
 * system) on stderr and exits with the command's
 * status (128 + signal if it was killed). Used by the CLI tests and the
 * benchmarks; GNU time is not on a base Debian.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct rusage ru;
	int status;
	pid_t pid;

	if (argc < 2) {
		fprintf(stderr, "usage: peakrss COMMAND [ARG ...]\n");
		return 64;
	}
	pid = fork();
	if (pid < 0) {
		perror("peakrss: fork");
		return 71;
	}
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		perror("peakrss: exec");
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || getrusage(RUSAGE_CHILDREN, &ru)) {
		perror("peakrss: wait");
		return 71;
	}
	fprintf(stderr, "peakrss: %ld KiB\ncputime: %ld ms\n", ru.ru_maxrss,
		(long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
		    (long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
