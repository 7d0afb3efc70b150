// SPDX-License-Identifier: GPL-2.0
/*
 * sodp_soak: a bounded, checksummed soak of one device (SODP_DEVICE).
 *
 * Several streams, each with its own RC QP pair and its own buffers
 * (local source, remote target, scratch read-back), run rounds of: fill
 * the local buffer with the round's pattern (the model), RDMA WRITE it
 * into the remote buffer in chunks of varying size, RDMA READ the remote
 * buffer back into the scratch buffer, then compare local, remote and
 * scratch byte for byte with the model; on devices with atomics (rxe)
 * each round also posts FETCH_ADDs on a per-stream counter and checks
 * every fetched value. Every WR carries the QP's next sequence number as
 * wr_id; a completion out of sequence counts as lost or duplicated.
 *
 * Streams: 0 explicit ODP MRs on anonymous memory, 1 one implicit ODP MR,
 * 2 plain MRs (ODP under sodp.pin_mode=all), 3 explicit ODP MRs with the
 * remote buffer in a MAP_SHARED tmpfs file (memfd).
 *
 * Meanwhile mover threads migrate every buffer between NUMA nodes
 * (move_pages()), compact memory, and fork + exit: these keep content, so
 * they run while the streams transfer. A destroyer thread picks a stream,
 * takes its lock (a stream holds it for a whole round) and, between two
 * rounds, MADV_DONTNEEDs, munmaps and remaps (MAP_FIXED), truncates or
 * punches its buffers. Each round redefines all three buffers from the
 * model, so the destroyed content is never expected back; the next round
 * checks that the transfers land in the new pages. The destroyer leaves the
 * plain-MR stream alone (pinned semantics would not follow a remap).
 *
 * SODP_SOAK_CORRUPT=1 flips one byte of one round's model after its
 * transfers: the run must then report a mismatch and fail (self-check).
 *
 * Usage: sodp_soak [SECS]; exit status 0 if nothing mismatched and no
 * completion was lost or duplicated.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#define LEN		(1024ul * 1024)
#define WINDOW		32
#define NSTREAM		4
#define NATOMIC		16

enum { S_EXPLICIT, S_IMPLICIT, S_PLAIN, S_FILE };
static const char *const sname[NSTREAM] = {
	"explicit-odp", "implicit-odp", "plain", "file-odp"
};

struct stream {
	int idx;
	struct sodp_pair pair;
	char *buf[3];			/* local, remote, scratch */
	struct ibv_mr *mr[3];
	uint64_t *atom;			/* [0] the counter, [1..] results */
	struct ibv_mr *amr;
	int fd;				/* S_FILE: the remote buffer's memfd */
	pthread_mutex_t lock;		/* held for a round */
	uint64_t seq, done;		/* wr_ids posted, completed */
	uint64_t counter;		/* the atomic counter's model */
	uint64_t rounds, bytes_moved, bytes_verified, mismatches;
	uint64_t lost, dup, atomics;
	int err;
};

static struct sodp_dev dev;
static struct stream st[NSTREAM];
static struct ibv_mr *implicit_mr;
static int nstream, use_atomics, corrupt;
static atomic_int stop;
static atomic_long nmoved, nmove_err, ncompact, nforks, ndontneed, nremap;
static struct sodp_churn forks = { &stop, &nforks };
static atomic_long ntrunc, npunch;

static uint32_t lkey(struct stream *s, int b)
{
	return s->mr[b] ? s->mr[b]->lkey : implicit_mr->lkey;
}

static uint32_t rkey(struct stream *s, int b)
{
	return s->mr[b] ? s->mr[b]->rkey : implicit_mr->rkey;
}

static void *migrator(void *arg)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t per = LEN / pg, n = 0, i;
	int b, j, node = 1;
	void **pages = calloc(nstream * (3 * per + 1), sizeof(*pages));
	int *nodes = calloc(nstream * (3 * per + 1), sizeof(*nodes));
	int *status = calloc(nstream * (3 * per + 1), sizeof(*status));

	(void)arg;
	for (j = 0; j < nstream; j++) {
		for (b = 0; b < 3; b++)
			for (i = 0; i < per; i++)
				pages[n++] = st[j].buf[b] + i * pg;
		pages[n++] = st[j].atom;
	}
	while (!stop) {
		/* Pages a destroyer just unmapped or dropped fail alone. */
		if (sodp_move_pages_to(pages, n, nodes, status, node) < 0) {
			if (errno == ENODEV || errno == EINVAL) {
				fprintf(stderr, "# move_pages: %s, no migration\n",
					strerror(errno));
				break;
			}
			nmove_err++;
		} else {
			nmoved++;
		}
		node = !node;
		usleep(2000);
	}
	free(pages);
	free(nodes);
	free(status);
	return NULL;
}

static void *compactor(void *arg)
{
	(void)arg;
	while (!stop) {
		int fd = open("/proc/sys/vm/compact_memory", O_WRONLY);

		if (fd < 0)
			break;
		if (write(fd, "1", 1) == 1)
			ncompact++;
		close(fd);
		usleep(200000);
	}
	return NULL;
}

static void remap(char *p, int shared_fd)
{
	void *q;

	munmap(p, LEN);
	if (shared_fd >= 0)
		q = mmap(p, LEN, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, shared_fd, 0);
	else
		q = mmap(p, LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (q != p) {
		perror("mmap(MAP_FIXED)");
		exit(1);
	}
}

static void *destroyer(void *arg)
{
	unsigned int seed = 1;

	(void)arg;
	while (!stop) {
		struct stream *s = &st[rand_r(&seed) % nstream];
		int b = rand_r(&seed) % 3, op = rand_r(&seed) % 4;

		if (s->idx == S_PLAIN) {
			usleep(1000);
			continue;
		}
		pthread_mutex_lock(&s->lock);
		if (s->idx == S_FILE && b == 1) {
			if (op == 0) {
				if (ftruncate(s->fd, 0) || ftruncate(s->fd, LEN))
					perror("ftruncate");
				ntrunc++;
			} else if (op == 1) {
				remap(s->buf[1], s->fd);
				nremap++;
			} else {
				if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE |
					      FALLOC_FL_KEEP_SIZE, LEN / 4,
					      LEN / 2))
					perror("fallocate");
				npunch++;
			}
		} else if (op == 0) {
			remap(s->buf[b], -1);
			nremap++;
		} else {
			madvise(s->buf[b], LEN, MADV_DONTNEED);
			ndontneed++;
		}
		pthread_mutex_unlock(&s->lock);
		usleep(3000);
	}
	return NULL;
}

/* Reap one completion and check its sequence number; 0 or -1. */
static int reap(struct stream *s)
{
	struct ibv_wc wc;

	if (sodp_poll_one(s->pair.cli.scq, &wc, 60000))
		return -1;
	if (wc.status != IBV_WC_SUCCESS) {
		fprintf(stderr, "# %s: wr_id %llu: wc status %s\n",
			sname[s->idx], (unsigned long long)wc.wr_id,
			ibv_wc_status_str(wc.status));
		return -1;
	}
	if (wc.wr_id < s->done) {
		s->dup++;
		fprintf(stderr, "# %s: duplicate completion %llu (next %llu)\n",
			sname[s->idx], (unsigned long long)wc.wr_id,
			(unsigned long long)s->done);
		return 0;
	}
	if (wc.wr_id > s->done) {
		s->lost += wc.wr_id - s->done;
		fprintf(stderr, "# %s: completions %llu..%llu lost\n",
			sname[s->idx], (unsigned long long)s->done,
			(unsigned long long)wc.wr_id - 1);
	}
	s->done = wc.wr_id + 1;
	return 0;
}

/* Post @op over buffer @lb to/from remote in chunks of ~1..16 KiB. */
static int stream_op(struct stream *s, enum ibv_wr_opcode op, int lb,
		     unsigned int seed)
{
	size_t off = 0, len;

	while (off < LEN || s->done < s->seq) {
		while (off < LEN && s->seq - s->done < WINDOW) {
			len = 1024 * (1 + rand_r(&seed) % 16) -
			      rand_r(&seed) % 7;
			if (len > LEN - off)
				len = LEN - off;
			if (sodp_post_rdma(&s->pair.cli, op, s->seq,
					   s->buf[lb] + off, len, lkey(s, lb),
					   (uintptr_t)s->buf[1] + off,
					   rkey(s, 1), 0))
				return -1;
			off += len;
			s->seq++;
			s->bytes_moved += len;
		}
		if (reap(s))
			return -1;
		/* A lost completion must not make the loop wait forever. */
		if (s->done > s->seq)
			return -1;
	}
	return 0;
}

static int atomics(struct stream *s)
{
	uint64_t base = s->counter;
	int i;

	for (i = 1; i <= NATOMIC; i++) {
		s->atom[i] = ~0ull;
		if (sodp_post_atomic(&s->pair.cli, IBV_WR_ATOMIC_FETCH_AND_ADD,
				     s->seq++, &s->atom[i], s->amr->lkey,
				     (uintptr_t)&s->atom[0], s->amr->rkey, 1,
				     0))
			return -1;
	}
	while (s->done < s->seq)
		if (reap(s))
			return -1;
	/* RC executes them in order: each fetched the one before plus 1. */
	for (i = 1; i <= NATOMIC; i++)
		if (s->atom[i] != base + i - 1) {
			fprintf(stderr, "# %s: fetch_add %d got %llu, not %llu\n",
				sname[s->idx], i,
				(unsigned long long)s->atom[i],
				(unsigned long long)(base + i - 1));
			s->mismatches++;
		}
	s->counter = base + NATOMIC;
	if (s->atom[0] != s->counter) {
		fprintf(stderr, "# %s: counter %llu, not %llu\n", sname[s->idx],
			(unsigned long long)s->atom[0],
			(unsigned long long)s->counter);
		s->mismatches++;
		s->counter = s->atom[0];
	}
	s->atomics += NATOMIC;
	return 0;
}

/* Bytes of @buf that differ from the model in @model. */
static uint64_t diff(const char *what, struct stream *s, const char *buf,
		     const char *model)
{
	uint64_t n = 0;
	size_t i, first = 0;

	if (!memcmp(buf, model, LEN))
		return 0;
	for (i = 0; i < LEN; i++)
		if (buf[i] != model[i] && !n++)
			first = i;
	fprintf(stderr, "# %s round %llu: %s: %llu bytes differ, first at %zu\n",
		sname[s->idx], (unsigned long long)s->rounds, what,
		(unsigned long long)n, first);
	return n;
}

static void *streamer(void *arg)
{
	struct stream *s = arg;
	char *model = malloc(LEN);

	while (!stop && !s->err) {
		uint64_t seed = (s->rounds + 1) * NSTREAM + s->idx;

		pthread_mutex_lock(&s->lock);
		sodp_pattern_fill(model, LEN, seed, 0);
		memcpy(s->buf[0], model, LEN);
		if (stream_op(s, IBV_WR_RDMA_WRITE, 0, seed) ||
		    stream_op(s, IBV_WR_RDMA_READ, 2, seed * 7) ||
		    (use_atomics && atomics(s))) {
			s->err = 1;
			pthread_mutex_unlock(&s->lock);
			break;
		}
		if (corrupt && s->idx == 0) {
			model[LEN / 3] ^= 0x20;
			corrupt = 0;
		}
		s->mismatches += diff("local", s, s->buf[0], model);
		s->mismatches += diff("remote", s, s->buf[1], model);
		s->mismatches += diff("read-back", s, s->buf[2], model);
		s->bytes_verified += 3 * LEN;
		s->rounds++;
		pthread_mutex_unlock(&s->lock);
	}
	free(model);
	return NULL;
}

static int stream_setup(struct stream *s, int idx)
{
	int odp = SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND;
	int access = idx == S_PLAIN ? SODP_ACCESS_RW : odp;
	int b;

	s->idx = idx;
	s->fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	if (sodp_pair_connect(&dev, &s->pair))
		return -1;
	for (b = 0; b < 3; b++) {
		if (idx == S_FILE && b == 1) {
			s->fd = memfd_create("sodp_soak", 0);
			if (s->fd < 0 || ftruncate(s->fd, LEN))
				return -1;
			s->buf[b] = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
					 MAP_SHARED, s->fd, 0);
			if (s->buf[b] == MAP_FAILED)
				return -1;
		} else {
			s->buf[b] = sodp_map_anon(LEN);
			if (!s->buf[b])
				return -1;
		}
		if (idx == S_IMPLICIT)
			continue;
		s->mr[b] = sodp_mr_reg(&dev, s->buf[b], LEN, access);
		if (!s->mr[b])
			return -1;
	}
	s->atom = sodp_map_anon(4096);
	if (!s->atom)
		return -1;
	s->amr = sodp_mr_reg(&dev, s->atom, 4096, access |
			     IBV_ACCESS_REMOTE_ATOMIC);
	return s->amr ? 0 : -1;
}

/* Every global sodp counter (one value per file in SODP_DEBUGFS). */
static void counters(void)
{
	struct dirent *de;
	DIR *d = opendir(SODP_DEBUGFS);
	int64_t v;

	if (!d) {
		printf("%s: no %s\n", dev.name, SODP_DEBUGFS);
		return;
	}
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && !sodp_debugfs_get(de->d_name, &v))
			printf("%s: sodp %s %lld\n", dev.name, de->d_name,
			       (long long)v);
	closedir(d);
}

int main(int argc, char **argv)
{
	const char *name = getenv("SODP_DEVICE");
	int secs = argc > 1 ? atoi(argv[1]) : 600;
	uint64_t moved = 0, verified = 0, bad = 0, lost = 0, dup = 0;
	pthread_t mov[4], sth[NSTREAM];
	int i, err = 0;
	time_t end;

	if (!name) {
		fprintf(stderr, "usage: SODP_DEVICE=dev %s [secs]\n", argv[0]);
		return 2;
	}
	corrupt = getenv("SODP_SOAK_CORRUPT") &&
		  atoi(getenv("SODP_SOAK_CORRUPT"));
	if (sodp_dev_open(&dev, name))
		return 1;
	use_atomics = dev.attr.atomic_cap != IBV_ATOMIC_NONE;
	implicit_mr = sodp_mr_reg(&dev, NULL, SIZE_MAX,
				  SODP_ACCESS_RW | IBV_ACCESS_ON_DEMAND);
	nstream = 0;
	for (i = 0; i < NSTREAM; i++) {
		if (i == S_IMPLICIT && !implicit_mr) {
			printf("%s: no implicit ODP, stream skipped\n", name);
			continue;
		}
		if (stream_setup(&st[nstream], i)) {
			fprintf(stderr, "# %s: setup of %s failed\n", name,
				sname[i]);
			return 1;
		}
		nstream++;
	}

	pthread_create(&mov[0], NULL, migrator, NULL);
	pthread_create(&mov[1], NULL, compactor, NULL);
	pthread_create(&mov[2], NULL, sodp_churn_fork, &forks);
	pthread_create(&mov[3], NULL, destroyer, NULL);
	for (i = 0; i < nstream; i++)
		pthread_create(&sth[i], NULL, streamer, &st[i]);

	end = time(NULL) + secs;
	while (time(NULL) < end) {
		for (i = 0; i < nstream; i++)
			if (st[i].err)
				end = 0;
		sleep(1);
	}
	stop = 1;
	for (i = 0; i < nstream; i++)
		pthread_join(sth[i], NULL);
	for (i = 0; i < 4; i++)
		pthread_join(mov[i], NULL);

	for (i = 0; i < nstream; i++) {
		struct stream *s = &st[i];

		printf("%s: stream %-12s %6llu rounds, %llu bytes moved, ",
		       name, sname[s->idx], (unsigned long long)s->rounds,
		       (unsigned long long)s->bytes_moved);
		printf("%llu verified, %llu atomics, %llu completions, ",
		       (unsigned long long)s->bytes_verified,
		       (unsigned long long)s->atomics,
		       (unsigned long long)s->done);
		printf("%llu mismatches, %llu lost, %llu duplicated%s\n",
		       (unsigned long long)s->mismatches,
		       (unsigned long long)s->lost,
		       (unsigned long long)s->dup, s->err ? ", ERROR" : "");
		moved += s->bytes_moved;
		verified += s->bytes_verified;
		bad += s->mismatches;
		/* After an error the rest were flushed, not lost. */
		lost += s->lost + (!s->err && s->seq > s->done ?
				   s->seq - s->done : 0);
		dup += s->dup;
		err |= s->err;
	}
	printf("%s: movers: %ld move_pages (%ld failed), %ld compactions, ",
	       name, (long)nmoved, (long)nmove_err, (long)ncompact);
	printf("%ld forks, %ld dontneeds, %ld remaps, %ld truncates, %ld punches\n",
	       (long)nforks, (long)ndontneed, (long)nremap, (long)ntrunc,
	       (long)npunch);
	counters();
	printf("%s: soak %d s: %llu bytes moved, %llu bytes verified, ", name,
	       secs, (unsigned long long)moved, (unsigned long long)verified);
	printf("%llu mismatches, %llu lost, %llu duplicated: %s\n",
	       (unsigned long long)bad,
	       (unsigned long long)lost, (unsigned long long)dup,
	       bad || lost || dup || err ? "FAILED" : "ok");
	for (i = 0; i < nstream; i++) {
		int b;

		sodp_mr_dereg(&st[i].amr);
		for (b = 0; b < 3; b++)
			if (st[i].mr[b])
				sodp_mr_dereg(&st[i].mr[b]);
		sodp_pair_destroy(&st[i].pair);
	}
	if (implicit_mr)
		sodp_mr_dereg(&implicit_mr);
	sodp_dev_close(&dev);
	return bad || lost || dup || err;
}
