/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sodp: software On-Demand Paging for the soft-RDMA drivers (rxe, siw).
 *
 * A struct sodp_umem mirrors one virtual address range of one process
 * through an HMM mirror (mmu_interval_notifier + hmm_range_fault()). The
 * driver calls the copy/access functions below for every data access to an
 * ODP memory region; they translate, fault when needed, and keep a small
 * aged cache of page references that the mm recalls on invalidation.
 * See Documentation/sodp/core.rst.
 *
 * Errno contract of every function returning int:
 *   0        success
 *   -EFAULT  the range cannot be faulted with the needed permission: not
 *            mapped, a write to memory the process cannot write (or a write
 *            to a umem registered without write access), memory sodp
 *            refuses as GUP does (VM_IO/VM_PFNMAP, secretmem, a write to
 *            a shadow stack), or the process address space is gone
 *   -EAGAIN  only with SODP_NOFAULT: a page is not resident in the mirror;
 *            retry from sleepable context without SODP_NOFAULT
 *   -ERANGE  [va, va + len) overflows or is not inside the umem
 *   -EINVAL  bad arguments (unknown flags, access crossing a page)
 *   -ENOMEM  out of memory
 *   -EBUSY   the range kept being invalidated for HMM_RANGE_DEFAULT_TIMEOUT;
 *            the caller may retry
 */
#ifndef _RDMA_SODP_H
#define _RDMA_SODP_H

#include <linux/bits.h>
#include <linux/types.h>

struct mm_struct;
struct module;
struct page;
struct sk_buff;
struct sodp_advise;
struct sodp_dev_stats;
struct sodp_umem;
struct sodp_cent;

/* sodp_umem_get() flags */
#define SODP_UMEM_IMPLICIT	BIT(0)	/* whole address space, on demand */

/* Access flags for copy_to/copy_from/access_begin */
#define SODP_NOFAULT		BIT(0)	/* atomic context: never sleep */
#define SODP_WRITE		BIT(1)	/* access_begin only: will write */

/* sodp_umem_prefetch() flags */
#define SODP_PREFETCH_WRITE	BIT(0)	/* fault with write permission */
#define SODP_PREFETCH_NO_FAULT	BIT(1)	/* only mirror what is present */

/**
 * struct sodp_access - one page leased by sodp_umem_access_begin()
 * @umem: the umem the lease belongs to
 * @cent: the cache entry holding the page (opaque)
 * @kaddr: kernel mapping of the page, unmapped by sodp_umem_access_end()
 * @flags: the flags given to sodp_umem_access_begin()
 *
 * Lives on the caller's stack between sodp_umem_access_begin() and
 * sodp_umem_access_end(). The fields are private to the sodp core.
 */
struct sodp_access {
	struct sodp_umem *umem;
	struct sodp_cent *cent;
	void *kaddr;
	unsigned int flags;
};

/**
 * struct sodp_stats - snapshot of the counters of one umem
 * @faults: fault operations (one hmm_range_fault() window each)
 * @pages_faulted: pages published into the mirror by faults and prefetch
 * @invalidations: invalidate callbacks received
 * @pages_invalidated: mirrored pages removed by invalidations
 * @prefetches: sodp_umem_prefetch() calls
 * @cache_hits: page accesses served by the pinned cache
 * @cache_misses: page accesses that had to fill the cache or fault
 * @recalls: cache entries recalled by invalidations
 * @deferrals: driver deferrals reported by sodp_umem_count_deferral()
 * @pages_mirrored: pages currently present in the mirror table
 * @pages_cached: page references currently held by the cache
 */
struct sodp_stats {
	u64 faults;
	u64 pages_faulted;
	u64 invalidations;
	u64 pages_invalidated;
	u64 prefetches;
	u64 cache_hits;
	u64 cache_misses;
	u64 recalls;
	u64 deferrals;
	u64 pages_mirrored;
	u64 pages_cached;
};

/**
 * enum sodp_dev_counter - the sodp counters of one device
 * @SODP_DEV_PAGE_FAULTS: as &struct sodp_stats.faults, over every umem
 *	created with the device's &struct sodp_dev_stats
 * @SODP_DEV_PAGES_FAULTED: as &struct sodp_stats.pages_faulted, same
 * @SODP_DEV_PAGE_INVALIDATIONS: as &struct sodp_stats.invalidations, same
 * @SODP_DEV_PAGES_INVALIDATED: as &struct sodp_stats.pages_invalidated,
 *	same
 * @SODP_DEV_PAGE_PREFETCH: as &struct sodp_stats.prefetches, same
 * @SODP_DEV_CACHE_HITS: as &struct sodp_stats.cache_hits, same
 * @SODP_DEV_CACHE_MISSES: as &struct sodp_stats.cache_misses, same
 * @SODP_DEV_CACHE_RECALLS: as &struct sodp_stats.recalls, same
 * @SODP_DEV_DEFERRALS: as &struct sodp_stats.deferrals, same
 * @SODP_DEV_PAGES_HELD: page references the caches of those umems hold
 *	now (goes down again; 0 once they are idle or gone)
 * @SODP_DEV_NUM_COUNTERS: number of counters
 *
 * All but @SODP_DEV_PAGES_HELD only grow, and keep what released umems
 * counted.
 */
enum sodp_dev_counter {
	SODP_DEV_PAGE_FAULTS,
	SODP_DEV_PAGES_FAULTED,
	SODP_DEV_PAGE_INVALIDATIONS,
	SODP_DEV_PAGES_INVALIDATED,
	SODP_DEV_PAGE_PREFETCH,
	SODP_DEV_CACHE_HITS,
	SODP_DEV_CACHE_MISSES,
	SODP_DEV_CACHE_RECALLS,
	SODP_DEV_DEFERRALS,
	SODP_DEV_PAGES_HELD,
	SODP_DEV_NUM_COUNTERS
};

/**
 * enum sodp_pin_mode - policy for plain (non-ODP) user MRs
 * @SODP_PIN_MODE_PIN: pin with ib_umem_get() (stock behaviour)
 * @SODP_PIN_MODE_AUTO: pin; fall back to sodp where pinning is refused
 * @SODP_PIN_MODE_ALL: every user MR goes through sodp
 */
enum sodp_pin_mode {
	SODP_PIN_MODE_PIN,
	SODP_PIN_MODE_AUTO,
	SODP_PIN_MODE_ALL,
};

struct sodp_dev_stats *sodp_dev_stats_alloc(void);
void sodp_dev_stats_put(struct sodp_dev_stats *stats);
void sodp_dev_stats_read(struct sodp_dev_stats *stats,
			 const enum sodp_dev_counter *ids, unsigned int n,
			 u64 *values);

struct sodp_umem *sodp_umem_get(struct mm_struct *mm, u64 start, u64 length,
				int access, unsigned int flags,
				struct sodp_dev_stats *stats);
void sodp_umem_fence(struct sodp_umem *umem);
void sodp_umem_release(struct sodp_umem *umem);

int sodp_umem_copy_to(struct sodp_umem *umem, u64 va, const void *src,
		      size_t len, unsigned int flags);
int sodp_umem_copy_from(struct sodp_umem *umem, u64 va, void *dst,
			size_t len, unsigned int flags);

int sodp_umem_access_begin(struct sodp_umem *umem, u64 va, size_t len,
			   unsigned int flags, struct sodp_access *acc,
			   void **kaddr);
void sodp_umem_access_end(struct sodp_access *acc);

struct page *sodp_umem_get_page(struct sodp_umem *umem, u64 va,
				unsigned int flags);

int sodp_umem_prefetch(struct sodp_umem *umem, u64 va, u64 len,
		       unsigned int flags);

/**
 * struct sodp_advise_ops - how an ibv_advise_mr() request holds the MRs
 * @owner: the driver module (THIS_MODULE): @put and @dying are its code,
 *	so a request holds a reference on it until it is done
 * @put: drop the reference taken on an MR given to sodp_advise_add()
 * @dying: true once the MR is being destroyed, so that an asynchronous
 *	prefetch stops early; called from a work item
 */
struct sodp_advise_ops {
	struct module *owner;
	void (*put)(void *mr);
	bool (*dying)(void *mr);
};

struct sodp_advise *sodp_advise_alloc(u32 advice, u32 flags, u32 num_sge,
				      const struct sodp_advise_ops *ops,
				      bool *write);
void sodp_advise_add(struct sodp_advise *adv, void *mr,
		     struct sodp_umem *umem, u64 va, u32 length);
int sodp_advise_submit(struct sodp_advise *adv);
void sodp_advise_abort(struct sodp_advise *adv);

void sodp_umem_stats(struct sodp_umem *umem, struct sodp_stats *out);
int sodp_umem_fill_stat_entry(struct sodp_umem *umem, struct sk_buff *msg);
void sodp_umem_count_deferral(struct sodp_umem *umem);

u64 sodp_umem_start(struct sodp_umem *umem);
u64 sodp_umem_length(struct sodp_umem *umem);

enum sodp_pin_mode sodp_pin_mode(void);

#endif /* _RDMA_SODP_H */
