// SPDX-License-Identifier: GPL-2.0
/*
 * sodp_stress: RDMA traffic on ODP memory while the mm keeps invalidating
 * it, checking that no write is lost.
 *
 * For one device (SODP_DEVICE), for SECS seconds, rounds of: fill the
 * local ODP buffer with a new pattern, RDMA WRITE it into the remote ODP
 * buffer in chunks of varying size and offset, RDMA READ the remote buffer
 * into a scratch ODP buffer, then compare the remote buffer with the
 * pattern. Meanwhile other threads move the pages of both buffers between
 * NUMA nodes (move_pages(); needs numa=fake=2 or more nodes), write-protect
 * the local buffer and make it writable again, fork, and MADV_DONTNEED the
 * scratch buffer, so that cache hits, evictions, aging and recalls race
 * with each other. A write that landed in a page after its invalidation
 * returned would be lost by the migration and show up as a mismatch.
 *
 * Usage: sodp_stress [SECS]; exit status 0 if every round matched.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sodp_lib.h"

#define LEN	(4ul << 20)
#define WINDOW	32

static char *local_buf, *remote_buf, *scratch_buf;
static atomic_int stop;
static atomic_long nmoved, nprot, nforks, ndontneed;
static struct sodp_churn forks = { &stop, &nforks };
static pthread_mutex_t local_lock = PTHREAD_MUTEX_INITIALIZER;

static void *migrator(void *arg)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t n = LEN / pg, i;
	void **pages = calloc(2 * n, sizeof(*pages));
	int *nodes = calloc(2 * n, sizeof(*nodes));
	int *status = calloc(2 * n, sizeof(*status));
	int node = 1;

	(void)arg;
	for (i = 0; i < n; i++) {
		pages[i] = remote_buf + i * pg;
		pages[n + i] = local_buf + i * pg;
	}
	while (!stop) {
		if (sodp_move_pages_to(pages, 2 * n, nodes, status, node) < 0) {
			fprintf(stderr, "# move_pages: %s, no migration\n",
				strerror(errno));
			break;
		}
		nmoved++;
		node = !node;
		usleep(1000);
	}
	free(pages);
	free(nodes);
	free(status);
	return NULL;
}

static void *protector(void *arg)
{
	(void)arg;
	while (!stop) {
		pthread_mutex_lock(&local_lock);
		if (mprotect(local_buf, LEN, PROT_READ) ||
		    (usleep(500), mprotect(local_buf, LEN,
					   PROT_READ | PROT_WRITE))) {
			perror("mprotect");
			exit(1);
		}
		pthread_mutex_unlock(&local_lock);
		nprot++;
		usleep(2000);
	}
	return NULL;
}

static void *dontneeder(void *arg)
{
	(void)arg;
	while (!stop) {
		madvise(scratch_buf, LEN / 2, MADV_DONTNEED);
		ndontneed++;
		usleep(3000);
	}
	return NULL;
}

/* Post @op over the buffers in chunks of 1..16 KiB; 0 or -1. */
static int stream(struct sodp_pair *pair, enum ibv_wr_opcode op, char *lbuf,
		  uint32_t lkey, char *rbuf, uint32_t rkey, unsigned int seed)
{
	size_t posted = 0, done = 0, off = 0, len;
	struct ibv_wc wc;

	while (off < LEN || done < posted) {
		while (off < LEN && posted - done < WINDOW) {
			len = 1024 * (1 + rand_r(&seed) % 16) -
			      rand_r(&seed) % 7;
			if (len > LEN - off)
				len = LEN - off;
			if (sodp_post_rdma(&pair->cli, op, posted, lbuf + off,
					   len, lkey, (uintptr_t)rbuf + off,
					   rkey, 0))
				return -1;
			off += len;
			posted++;
		}
		if (sodp_poll_one(pair->cli.scq, &wc, 60000))
			return -1;
		if (wc.status != IBV_WC_SUCCESS) {
			fprintf(stderr, "# wc status %s\n",
				ibv_wc_status_str(wc.status));
			return -1;
		}
		done++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int access = SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND;
	const char *name = getenv("SODP_DEVICE");
	int secs = argc > 1 ? atoi(argv[1]) : 20;
	struct ibv_mr *lmr, *rmr, *smr;
	pthread_t th[4];
	struct sodp_pair pair;
	struct sodp_dev dev;
	unsigned int round;
	int bad = 0, i;
	time_t end;

	if (!name) {
		fprintf(stderr, "usage: SODP_DEVICE=dev %s [secs]\n", argv[0]);
		return 2;
	}
	if (sodp_dev_open(&dev, name) || sodp_pair_connect(&dev, &pair))
		return 1;
	local_buf = sodp_map_anon(LEN);
	remote_buf = sodp_map_anon(LEN);
	scratch_buf = sodp_map_anon(LEN);
	if (!local_buf || !remote_buf || !scratch_buf)
		return 1;
	lmr = sodp_mr_reg(&dev, local_buf, LEN, access);
	rmr = sodp_mr_reg(&dev, remote_buf, LEN, access);
	smr = sodp_mr_reg(&dev, scratch_buf, LEN, access);
	if (!lmr || !rmr || !smr)
		return 1;

	pthread_create(&th[0], NULL, migrator, NULL);
	pthread_create(&th[1], NULL, protector, NULL);
	pthread_create(&th[2], NULL, sodp_churn_fork, &forks);
	pthread_create(&th[3], NULL, dontneeder, NULL);

	end = time(NULL) + secs;
	for (round = 1; time(NULL) < end && !bad; round++) {
		ssize_t at;

		pthread_mutex_lock(&local_lock);
		sodp_pattern_fill(local_buf, LEN, round, 0);
		pthread_mutex_unlock(&local_lock);
		if (stream(&pair, IBV_WR_RDMA_WRITE, local_buf, lmr->lkey,
			   remote_buf, rmr->rkey, round) ||
		    stream(&pair, IBV_WR_RDMA_READ, scratch_buf, smr->lkey,
			   remote_buf, rmr->rkey, round * 7)) {
			bad = 1;
			break;
		}
		at = sodp_pattern_check(remote_buf, LEN, round, 0);
		if (at >= 0) {
			fprintf(stderr, "# round %u: lost write at offset %zd\n",
				round, at);
			bad = 1;
		}
	}
	stop = 1;
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);

	printf("%s: %u rounds of %lu MiB, %ld migrations, %ld mprotects, ",
	       name, round - 1, LEN >> 20, (long)nmoved, (long)nprot);
	printf("%ld forks, %ld dontneeds: %s\n", (long)nforks,
	       (long)ndontneed, bad ? "FAILED" : "ok");
	sodp_mr_dereg(&smr);
	sodp_mr_dereg(&rmr);
	sodp_mr_dereg(&lmr);
	sodp_pair_destroy(&pair);
	sodp_dev_close(&dev);
	return bad;
}
