/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sodp internal definitions, shared by the files of sodp.ko only.
 *
 * Lock order (outermost first):
 *
 *   umem->fault_mutex
 *     mm->mmap_lock (read in the fault path, write inside
 *                    mmu_interval_notifier_insert())
 *       umem->lock (spinlock, taken with BHs disabled)
 *
 * The invalidate callback takes umem->lock only, and waits (with no sodp
 * lock held) for the in-flight count of the cache entries it recalls. Cache
 * hits take no lock at all (RCU lookup + in-flight count, see
 * sodp_cache.c). It
 * never takes umem->fault_mutex and never waits for a fault or a peer.
 * No xarray lock is ever taken under umem->lock: readers use xa_load(),
 * which is RCU based.
 */
#ifndef _SODP_PRIV_H
#define _SODP_PRIV_H

#include <linux/atomic.h>
#include <linux/hmm.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mmu_notifier.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <rdma/sodp.h>

/*
 * The mirror table is an xarray of chunks of SODP_CHUNK_PAGES entries,
 * indexed by the absolute page number (va >> PAGE_SHIFT) >> SODP_CHUNK_SHIFT.
 * A chunk covers 2 MiB of VA with 4 KiB pages, the size of a PMD mapping,
 * and is allocated on the first fault in its range. An implicit umem has one
 * child interval notifier per chunk (see sodp_implicit.c).
 */
#define SODP_CHUNK_SHIFT	9
#define SODP_CHUNK_PAGES	BIT(SODP_CHUNK_SHIFT)
#define SODP_CHUNK_MASK		(SODP_CHUNK_PAGES - 1)

/* Bits of a mirror table entry kept from the hmm_pfn: */
#define SODP_PTE_FLAGS		(HMM_PFN_VALID | HMM_PFN_WRITE)

/**
 * struct sodp_chunk - one chunk of the mirror table
 * @pfns: per page 0 (not mirrored) or HMM_PFN_VALID [| HMM_PFN_WRITE] | pfn
 *
 * Entries are written and cleared under umem->lock only.
 */
struct sodp_chunk {
	unsigned long pfns[SODP_CHUNK_PAGES];
};

/**
 * struct sodp_mirror - one interval notifier over a part of a umem
 * @mni: the interval notifier
 * @umem: the umem this mirror belongs to
 * @start: first mirrored VA, page aligned
 * @end: end of the mirrored VA range (exclusive), page aligned
 */
struct sodp_mirror {
	struct mmu_interval_notifier mni;
	struct sodp_umem *umem;
	unsigned long start;
	unsigned long end;
};

/**
 * struct sodp_cent - one entry of the pinned fast-path cache (a lease)
 * @hnode: in umem->cache.hash (RCU) while usable by new users
 * @pgidx: absolute page number (va >> PAGE_SHIFT); fixed while hashed
 * @page: the page, referenced by get_page() while the entry exists
 * @last_use: jiffies of the last lease, written only when it changes
 * @inflight: number of copies using @page right now
 * @writable: the mirror allowed writes when the lease was taken (only ever
 *	set)
 * @dirty: a write lease was taken: set_page_dirty() before put_page()
 * @recalled: being retired (transiently, under umem->lock) or unhashed by
 *	an invalidation: no new lockless users
 * @lru: in umem->cache.lru (clock order, see sodp_cache.c), or on a recall
 *	list
 * @rcu: frees the entry after the lockless lookups that may see it
 * @lru_stamp: @last_use when the eviction clock last passed the entry
 *
 * @hnode, @writable, @recalled, @lru, @lru_stamp and the hash membership
 * change under umem->lock only. The data path reads the entry under RCU
 * and raises @inflight without the lock, then checks @recalled after a full
 * barrier; it writes @last_use and @dirty without the lock. See the
 * protocol at the top of sodp_cache.c.
 */
struct sodp_cent {
	struct hlist_node hnode;
	unsigned long pgidx;
	struct page *page;
	unsigned long last_use;
	atomic_t inflight;
	bool writable;
	bool dirty;
	bool recalled;
	union {
		struct list_head lru;
		struct rcu_head rcu;
	};
	unsigned long lru_stamp;
};

/**
 * struct sodp_cache - the pinned fast-path cache of a umem
 * @hash: buckets of hashed entries, by pgidx
 * @hash_bits: log2 of the number of buckets
 * @lru: hashed entries, in clock order (approximately least recently used
 *	first)
 * @count: number of hashed entries
 * @max: bound on @count; exceeded by in-flight entries, and by dirty ones
 *	inserted in atomic context (up to 2 * @max) until the age work runs
 */
struct sodp_cache {
	struct hlist_head *hash;
	unsigned int hash_bits;
	struct list_head lru;
	unsigned int count;
	unsigned int max;
};

enum sodp_counter {
	SODP_CNT_FAULTS,
	SODP_CNT_PAGES_FAULTED,
	SODP_CNT_INVALIDATIONS,
	SODP_CNT_PAGES_INVALIDATED,
	SODP_CNT_PREFETCHES,
	SODP_CNT_CACHE_HITS,
	SODP_CNT_CACHE_MISSES,
	SODP_CNT_RECALLS,
	SODP_CNT_DEFERRALS,
	SODP_CNT_MAX
};

/**
 * struct sodp_pcpu_counters - one CPU's share of a set of counters
 * @c: by enum sodp_counter
 *
 * Per CPU so that the data path (one cache hit per page) updates a line no
 * other CPU writes, with no atomic instruction.
 */
struct sodp_pcpu_counters {
	u64 c[SODP_CNT_MAX];
};

/*
 * A device's counters are indexed by enum sodp_dev_counter, which starts
 * with the event counters in the order of enum sodp_counter: sodp_count()
 * adds to both with one index.
 */
#define SODP_CNT_IS_DEV(c, d) \
	static_assert((int)SODP_CNT_##c == (int)SODP_DEV_##d)
SODP_CNT_IS_DEV(FAULTS, PAGE_FAULTS);
SODP_CNT_IS_DEV(PAGES_FAULTED, PAGES_FAULTED);
SODP_CNT_IS_DEV(INVALIDATIONS, PAGE_INVALIDATIONS);
SODP_CNT_IS_DEV(PAGES_INVALIDATED, PAGES_INVALIDATED);
SODP_CNT_IS_DEV(PREFETCHES, PAGE_PREFETCH);
SODP_CNT_IS_DEV(CACHE_HITS, CACHE_HITS);
SODP_CNT_IS_DEV(CACHE_MISSES, CACHE_MISSES);
SODP_CNT_IS_DEV(RECALLS, CACHE_RECALLS);
SODP_CNT_IS_DEV(DEFERRALS, DEFERRALS);
SODP_CNT_IS_DEV(MAX, PAGES_HELD);
#undef SODP_CNT_IS_DEV

/**
 * struct sodp_dev_pcpu - one CPU's share of the counters of a device
 * @c: by enum sodp_dev_counter; c[SODP_DEV_PAGES_HELD] goes up on the CPU
 *	that took a reference and down on the one that dropped it, so only
 *	the sum over the CPUs means something
 */
struct sodp_dev_pcpu {
	u64 c[SODP_DEV_NUM_COUNTERS];
};

/**
 * struct sodp_dev_stats - the sodp counters of one RDMA device
 * @ref: one for the driver (dropped by sodp_dev_stats_put()) and one per
 *	umem created with it (dropped by sodp_umem_release()), so the counters
 *	outlive a device whose last MR is freed later by a work item
 * @cnt: the counters, per CPU as the umems' own
 */
struct sodp_dev_stats {
	struct kref ref;
	struct sodp_dev_pcpu __percpu *cnt;
};

/**
 * struct sodp_umem - one mirrored VA range of one mm
 * @mm: the mirrored mm, held with mmgrab()
 * @va_start: first byte the umem covers (as registered)
 * @va_end: end of the umem (exclusive)
 * @flags: SODP_UMEM_* flags
 * @writable: registered with an access that allows writes
 * @id: number for debug messages and tracepoints
 * @fault_mutex: serialises faulting, mirror table chunk allocation and
 *	implicit child creation/reclaim; outer to mmap_lock and @lock
 * @lock: protects the mirror table entries, @npages_mirrored, the cache
 *	(@cache and the entries, except what the lockless hit path may
 *	touch: see struct sodp_cent) and @reclaim_first/@reclaim_end.
 *	Taken by the invalidate callback and by the softirq data path, so
 *	always with BHs disabled.
 * @chunks: the mirror table; chunks are inserted under @fault_mutex and
 *	erased under @fault_mutex, then freed after a @lock/unlock pair (so
 *	no reader under @lock still uses them)
 * @npages_mirrored: valid mirror table entries
 * @cache: the pinned fast-path cache
 * @recall_wq: woken when a recalled entry's in-flight count drops to zero
 * @age_work: drops cache entries idle for longer than cache_idle_ms
 * @mirror: explicit umem: the single interval notifier
 * @children: implicit umem: struct sodp_mirror per chunk index, under
 *	@fault_mutex
 * @reclaim_first: first chunk index an invalidation emptied since
 *	@reclaim_work last ran
 * @reclaim_end: end of that chunk index range (exclusive); nothing to
 *	reclaim while @reclaim_first >= @reclaim_end
 * @reclaim_work: frees the chunks in [@reclaim_first, @reclaim_end) that
 *	are still empty, and an implicit umem's children with them
 * @cnt: per-CPU counters, see enum sodp_counter; summed by
 *	sodp_umem_stats()
 * @dev: the counters of the umem's device, or NULL; holds a reference
 * @users: calls that got past sodp_umem_enter() and have not left yet:
 *	the faulting ones, which may sleep for as long as the mm makes
 *	them (a frozen filesystem, a stalled FUSE daemon)
 * @dying: set once by sodp_umem_fence(); later faults fail with -EFAULT
 */
struct sodp_umem {
	struct mm_struct *mm;
	u64 va_start;
	u64 va_end;
	unsigned int flags;
	bool writable;
	u32 id;

	struct mutex fault_mutex;	/* see @fault_mutex above */
	spinlock_t lock;		/* see @lock above */

	struct xarray chunks;
	unsigned long npages_mirrored;
	struct sodp_cache cache;
	wait_queue_head_t recall_wq;
	struct delayed_work age_work;

	struct sodp_mirror mirror;
	struct xarray children;
	unsigned long reclaim_first;
	unsigned long reclaim_end;
	struct delayed_work reclaim_work;

	struct sodp_pcpu_counters __percpu *cnt;
	struct sodp_dev_stats *dev;

	atomic_t users;
	bool dying;
};

static inline bool sodp_umem_is_implicit(const struct sodp_umem *umem)
{
	return umem->flags & SODP_UMEM_IMPLICIT;
}

#define sodp_dbg_umem(umem, fmt, ...)					\
	pr_debug("umem%u %s: " fmt, (umem)->id, __func__, ##__VA_ARGS__)

/* sodp_main.c: globals, module parameters */
DECLARE_PER_CPU(struct sodp_pcpu_counters, sodp_pcpu_cnt);
extern atomic64_t sodp_live_umems;
extern atomic64_t sodp_pages_held;
/* Kernel memory the mirror costs: chunks of every table, implicit children */
extern atomic64_t sodp_table_chunks;
extern atomic64_t sodp_implicit_children;
int sodp_umem_prefetch_until(struct sodp_umem *umem, u64 va, u64 len,
			     unsigned int flags, bool (*stop)(void *arg),
			     void *arg);
extern struct workqueue_struct *sodp_wq;
extern struct kmem_cache *sodp_cent_cache;

unsigned int sodp_param_fault_around(void);
unsigned int sodp_param_cache_pages(void);
unsigned long sodp_param_idle_jiffies(void);
u32 sodp_next_id(void);

static inline void sodp_count(struct sodp_umem *umem, enum sodp_counter c,
			      u64 n)
{
	this_cpu_add(umem->cnt->c[c], n);
	this_cpu_add(sodp_pcpu_cnt.c[c], n);
	if (umem->dev)
		this_cpu_add(umem->dev->cnt->c[c], n);
}

/* A page reference taken (@n = 1) or dropped (-1) by the cache of @umem. */
static inline void sodp_count_held(struct sodp_umem *umem, int n)
{
	atomic64_add(n, &sodp_pages_held);
	if (umem->dev)
		this_cpu_add(umem->dev->cnt->c[SODP_DEV_PAGES_HELD], (s64)n);
}

/* sodp_stats.c */
void sodp_dev_stats_get(struct sodp_dev_stats *stats);

/* sodp_umem.c */
extern const struct mmu_interval_notifier_ops sodp_mirror_ops;

/* sodp_table.c */
int sodp_table_prepare(struct sodp_umem *umem, unsigned long pgidx);
unsigned long sodp_table_lookup_locked(struct sodp_umem *umem,
				       unsigned long pgidx);
unsigned long sodp_table_publish_locked(struct sodp_umem *umem,
					struct sodp_mirror *mirror,
					const struct hmm_range *range);
unsigned long sodp_table_clear_locked(struct sodp_umem *umem,
				      unsigned long first, unsigned long end);
void sodp_table_free_chunk(struct sodp_umem *umem, unsigned long ci);
bool sodp_table_chunk_idle(struct sodp_umem *umem, unsigned long ci);
void sodp_table_destroy(struct sodp_umem *umem);

/* sodp_cache.c */
int sodp_cache_init(struct sodp_umem *umem);
void sodp_cache_destroy(struct sodp_umem *umem);
struct sodp_cent *sodp_cache_lease_fast(struct sodp_umem *umem,
					unsigned long pgidx, bool write);
int sodp_cache_lease(struct sodp_umem *umem, unsigned long pgidx,
		     bool write, bool atomic, struct sodp_cent **entp);
void sodp_cache_unlease(struct sodp_umem *umem, struct sodp_cent *ent);
bool sodp_cache_quiesce_locked(struct sodp_umem *umem, unsigned long first,
			       unsigned long end);
unsigned int sodp_cache_recall_locked(struct sodp_umem *umem,
				      unsigned long first, unsigned long end,
				      struct list_head *out);
unsigned int sodp_cache_release_list(struct sodp_umem *umem,
				     struct list_head *list, bool wait);
void sodp_cache_trim(struct sodp_umem *umem, bool all);
void sodp_cache_age_work(struct work_struct *work);

/* sodp_fault.c */
/* What sodp_vma_vet() allows for the pages of a VMA. */
enum sodp_vma_verdict {
	SODP_VMA_OK,
	SODP_VMA_READ_ONLY,
	SODP_VMA_REFUSED,
};

enum sodp_vma_verdict sodp_vma_vet(struct vm_area_struct *vma, bool write);
int sodp_fault_page(struct sodp_umem *umem, unsigned long pgidx, bool write);

/* sodp_implicit.c */
struct sodp_mirror *sodp_mirror_get_locked(struct sodp_umem *umem,
					   unsigned long pgidx);
void sodp_implicit_destroy(struct sodp_umem *umem);
void sodp_umem_reclaim_locked(struct sodp_umem *umem, unsigned long ci);
void sodp_umem_reclaim_work(struct work_struct *work);

/* sodp_umem.c */
int sodp_umem_enter(struct sodp_umem *umem);
void sodp_umem_leave(struct sodp_umem *umem);
void sodp_umem_drop_range(struct sodp_umem *umem, unsigned long first,
			  unsigned long end);

#endif /* _SODP_PRIV_H */
