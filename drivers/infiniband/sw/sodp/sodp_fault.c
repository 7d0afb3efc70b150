// SPDX-License-Identifier: GPL-2.0
/*
 * The fault path: hmm_range_fault() under an interval notifier, published
 * into the mirror table under umem->lock once mmu_interval_read_retry()
 * says no invalidation collided (Documentation/mm/hmm.rst). Faults are
 * serialised per umem by umem->fault_mutex, which no invalidation takes.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <uapi/linux/magic.h>

#include "sodp_priv.h"
#include "sodp_trace.h"

/**
 * struct sodp_fault_req - one hmm_range_fault() request
 * @first: first page number to fault
 * @end: end page number (exclusive); a prefetch is cut short at the first
 *	VMA that needs a request of its own (see sodp_fault_clip_prefetch())
 * @need: page that must be covered: the range is clipped to its VMA;
 *	ULONG_MAX for no clipping (prefetch)
 * @hmm_flags: HMM_PFN_REQ_* flags of every page
 * @need_flags: HMM_PFN_REQ_* flags to fault @need with first, on top of
 *	@hmm_flags
 * @pfns: output array, at least @end - @first entries
 * @published: out: pages newly published into the mirror table
 * @no_write: the range lies in a VMA whose pages must not be mirrored
 *	writable, whatever the PTEs say (a shadow stack)
 */
struct sodp_fault_req {
	unsigned long first;
	unsigned long end;
	unsigned long need;
	unsigned long hmm_flags;
	unsigned long need_flags;
	unsigned long *pfns;
	unsigned long published;
	bool no_write;
};

/*
 * secretmem files live on their own pseudo filesystem. vma_is_secretmem()
 * is not exported to modules, but the filesystem magic is uapi.
 */
static bool sodp_vma_is_secretmem(struct vm_area_struct *vma)
{
	return IS_ENABLED(CONFIG_SECRETMEM) && vma->vm_file &&
	       file_inode(vma->vm_file)->i_sb->s_magic == SECRETMEM_MAGIC;
}

/**
 * sodp_vma_vet() - may sodp mirror the pages of a VMA?
 * @vma: the VMA
 * @write: the access writes
 *
 * hmm_range_fault() mirrors what the CPU could reach; get_user_pages()
 * refuses more (check_vma_flags()). sodp applies the rules that hold
 * without a pin:
 * - VM_IO | VM_PFNMAP: no struct page to copy through, or device memory
 *   (hmm_range_fault() refuses these too, but a snapshot must not try);
 * - secretmem: its pages are not in the kernel's direct map, copying
 *   through one oopses, and the secret must not leave the process;
 * - a shadow stack: its PTEs look writable, but nothing but the CPU's
 *   call and return may write it (GUP: only with FOLL_FORCE). Reads are
 *   allowed, the pages are mirrored read-only.
 * What FOLL_LONGTERM adds (FS-DAX, writable file mappings) is exactly
 * what sodp serves without a pin. Protection keys are not checked: the
 * accesses are made by kernel threads for a peer, GUP's FOLL_REMOTE case.
 *
 * Context: holds the mmap_lock of the VMA's mm.
 * Return: SODP_VMA_OK, SODP_VMA_READ_ONLY (mirror without write
 * permission) or SODP_VMA_REFUSED.
 */
enum sodp_vma_verdict sodp_vma_vet(struct vm_area_struct *vma, bool write)
{
	mmap_assert_locked(vma->vm_mm);

	if (vma->vm_flags & (VM_IO | VM_PFNMAP))
		return SODP_VMA_REFUSED;
	if (sodp_vma_is_secretmem(vma))
		return SODP_VMA_REFUSED;
	if (vma->vm_flags & VM_SHADOW_STACK)
		return write ? SODP_VMA_REFUSED : SODP_VMA_READ_ONLY;
	return SODP_VMA_OK;
}

/*
 * A prefetch may span VMAs: it stops before the first one that is not
 * SODP_VMA_OK (the next request starts there), and a request that starts
 * in such a VMA covers that VMA alone, read-only, or fails with -EFAULT.
 * Holes are left to hmm_range_fault().
 */
static int sodp_fault_clip_prefetch(struct mm_struct *mm,
				    struct sodp_fault_req *req,
				    struct hmm_range *range, bool write)
{
	VMA_ITERATOR(vmi, mm, range->start);
	struct vm_area_struct *vma;

	for_each_vma_range(vmi, vma, range->end) {
		enum sodp_vma_verdict v = sodp_vma_vet(vma, write);

		if (v == SODP_VMA_OK)
			continue;
		if (vma->vm_start <= range->start && v == SODP_VMA_REFUSED)
			return -EFAULT;
		if (vma->vm_start > range->start) {
			range->end = vma->vm_start;
		} else {
			range->end = min(range->end, vma->vm_end);
			req->no_write = true;
		}
		req->end = range->end >> PAGE_SHIFT;
		break;
	}
	return 0;
}

/*
 * Clip the request to the VMA of the needed page (a prefetch: to VMAs
 * that may be mirrored alike), refusing memory sodp must not mirror.
 */
static int sodp_fault_clip(struct mm_struct *mm, struct sodp_fault_req *req,
			   struct hmm_range *range)
{
	bool write = req->hmm_flags & HMM_PFN_REQ_WRITE;
	struct vm_area_struct *vma;

	mmap_assert_locked(mm);

	range->start = req->first << PAGE_SHIFT;
	range->end = req->end << PAGE_SHIFT;
	req->no_write = false;
	if (req->need == ULONG_MAX)
		return sodp_fault_clip_prefetch(mm, req, range, write);

	vma = vma_lookup(mm, req->need << PAGE_SHIFT);
	if (!vma)
		return -EFAULT;
	switch (sodp_vma_vet(vma, write)) {
	case SODP_VMA_REFUSED:
		return -EFAULT;
	case SODP_VMA_READ_ONLY:
		req->no_write = true;
		break;
	case SODP_VMA_OK:
		break;
	}
	range->start = max(range->start, vma->vm_start);
	range->end = min(range->end, vma->vm_end);
	return 0;
}

/* Take write permission from what hmm_range_fault() reported. */
static void sodp_fault_strip_write(struct hmm_range *range)
{
	unsigned long i, n = (range->end - range->start) >> PAGE_SHIFT;

	for (i = 0; i < n; i++)
		range->hmm_pfns[i] &= ~HMM_PFN_WRITE;
}

/*
 * hmm_range_fault() over @range (clipped already), faulting only @need
 * when @req has need_flags. Per-page request flags are not enough for
 * that: once a page of a walk needs a fault, hmm_range_fault() faults the
 * whole walk from there (or the whole hole the page is in) with that
 * page's flags. So fault @need alone, then map the range as it is mapped
 * now, @need included, without faulting. Both walks use the notifier
 * sequence of @range, so one mmu_interval_read_retry() validates them.
 */
static int sodp_fault_walk(const struct sodp_fault_req *req,
			   struct hmm_range *range)
{
	struct hmm_range one = *range;
	int ret;

	if (req->need_flags) {
		one.start = req->need << PAGE_SHIFT;
		one.end = one.start + PAGE_SIZE;
		one.hmm_pfns += req->need - (range->start >> PAGE_SHIFT);
		one.default_flags |= req->need_flags;
		ret = hmm_range_fault(&one);
		if (ret)
			return ret;
	}
	return hmm_range_fault(range);
}

/*
 * The pattern of Documentation/mm/hmm.rst with bounded retries, as in
 * lib/test_hmm.c. Returns hmm_range_fault()'s errno (-EFAULT, -EPERM,
 * -ENOMEM, -EBUSY after HMM_RANGE_DEFAULT_TIMEOUT).
 */
static int sodp_range_fault_locked(struct sodp_umem *umem,
				   struct sodp_mirror *mirror,
				   struct sodp_fault_req *req)
{
	unsigned long timeout =
		jiffies + msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	struct mm_struct *mm = umem->mm;
	struct hmm_range range = {
		.notifier = &mirror->mni,
		.hmm_pfns = req->pfns,
		.default_flags = req->hmm_flags,
	};
	int ret;

	lockdep_assert_held(&umem->fault_mutex);

	for (;;) {
		if (time_after(jiffies, timeout))
			return -EBUSY;

		range.notifier_seq = mmu_interval_read_begin(&mirror->mni);
		mmap_read_lock(mm);
		ret = sodp_fault_clip(mm, req, &range);
		if (!ret)
			ret = sodp_fault_walk(req, &range);
		mmap_read_unlock(mm);
		if (ret == -EBUSY)
			continue;
		if (ret)
			return ret;
		if (req->no_write)
			sodp_fault_strip_write(&range);

		/* The lock the invalidate callback takes, see hmm.rst. */
		spin_lock_bh(&umem->lock);
		if (mmu_interval_read_retry(&mirror->mni, range.notifier_seq)) {
			spin_unlock_bh(&umem->lock);
			continue;
		}
		req->published = sodp_table_publish_locked(umem, mirror,
							   &range);
		spin_unlock_bh(&umem->lock);
		return 0;
	}
}

static int sodp_fault_errno(int ret)
{
	/* hmm_range_fault(): -EPERM is a write to memory we may not write */
	return ret == -EPERM ? -EFAULT : ret;
}

/**
 * sodp_fault_page() - fault a page into the mirror, and map its neighbours
 * @umem: the umem
 * @pgidx: absolute page number of the missing page, inside the umem
 * @write: fault with write permission
 *
 * Faults @pgidx with the permission of the access, and mirrors the pages
 * of the fault_around_pages aligned window around it (clipped to the
 * mirror and to the VMA of @pgidx) as far as they are present, with the
 * permission they are mapped with, without faulting them. A fault has side
 * effects only the page being accessed may have: a write fault COWs a
 * private file page away from the file, allocates the blocks of a sparse
 * file, runs page_mkwrite and dirties a shared page, unmerges a KSM page;
 * even a read fault allocates a tmpfs page for a hole. The CPU's own
 * fault-around (which the fault of @pgidx runs for a read of a file) maps
 * page cache pages the same way. A later write to a neighbour mirrored
 * read-only misses and faults that page with write permission.
 *
 * If the window fails, faults @pgidx alone. A fault that mirrors nothing
 * frees the table chunk (and implicit child) it needed, see
 * sodp_umem_reclaim_locked().
 *
 * Context: process context. May sleep. Takes umem->fault_mutex, mmap_lock.
 * Return: 0 or an errno of the contract in include/rdma/sodp.h.
 */
int sodp_fault_page(struct sodp_umem *umem, unsigned long pgidx, bool write)
{
	unsigned long window = sodp_param_fault_around();
	struct sodp_fault_req req = {
		.need = pgidx,
		.need_flags = HMM_PFN_REQ_FAULT |
			      (write ? HMM_PFN_REQ_WRITE : 0),
	};
	struct sodp_mirror *mirror;
	int ret;

	if (write && !umem->writable)
		return -EFAULT;

	req.pfns = kmalloc_array(window, sizeof(*req.pfns), GFP_KERNEL);
	if (!req.pfns)
		return -ENOMEM;

	/*
	 * The mm may be exiting: then there is nothing left to fault.
	 * Pairs with mmput() below.
	 */
	if (!mmget_not_zero(umem->mm)) {
		ret = -EFAULT;
		goto out_free_pfns;
	}

	mutex_lock(&umem->fault_mutex);
	mirror = sodp_mirror_get_locked(umem, pgidx);
	if (IS_ERR(mirror)) {
		ret = PTR_ERR(mirror);
		goto out_unlock;
	}
	ret = sodp_table_prepare(umem, pgidx);
	if (ret)
		goto out_reclaim;

	/* A power of two at most a chunk: the window stays in the chunk. */
	req.first = max(pgidx & ~(window - 1), mirror->start >> PAGE_SHIFT);
	req.end = min((pgidx | (window - 1)) + 1, mirror->end >> PAGE_SHIFT);
	ret = sodp_range_fault_locked(umem, mirror, &req);
	if (ret && ret != -ENOMEM && req.end - req.first > 1) {
		req.first = pgidx;
		req.end = pgidx + 1;
		ret = sodp_range_fault_locked(umem, mirror, &req);
	}
	ret = sodp_fault_errno(ret);

	sodp_count(umem, SODP_CNT_FAULTS, 1);
	if (!ret)
		sodp_count(umem, SODP_CNT_PAGES_FAULTED, req.published);
	trace_sodp_fault(umem->id, (u64)pgidx << PAGE_SHIFT,
			 ret ? 0 : req.published, write, ret);
out_reclaim:
	if (ret || !req.published)
		sodp_umem_reclaim_locked(umem, pgidx >> SODP_CHUNK_SHIFT);
out_unlock:
	mutex_unlock(&umem->fault_mutex);
	/* Not under fault_mutex: this may be the last user of the mm. */
	mmput(umem->mm);
out_free_pfns:
	kfree(req.pfns);
	return ret;
}

/*
 * SODP_PREFETCH_NO_FAULT: skip to the first mapped page at or after @pgidx,
 * so a sparse range does not get mirror chunks or implicit children for
 * holes. VMAs sodp refuses count as holes (a snapshot has nothing to
 * report there; a faulting prefetch fails with -EFAULT instead). ULONG_MAX
 * when nothing is mapped above.
 */
static unsigned long sodp_prefetch_skip_hole(struct mm_struct *mm,
					     unsigned long pgidx)
{
	VMA_ITERATOR(vmi, mm, pgidx << PAGE_SHIFT);
	struct vm_area_struct *vma;

	mmap_read_lock(mm);
	for_each_vma(vmi, vma)
		if (sodp_vma_vet(vma, false) != SODP_VMA_REFUSED)
			break;
	if (!vma)
		pgidx = ULONG_MAX;
	else
		pgidx = max(pgidx, vma->vm_start >> PAGE_SHIFT);
	mmap_read_unlock(mm);
	return pgidx;
}

/**
 * sodp_umem_prefetch_until() - sodp_umem_prefetch() that can stop early
 * @umem: the umem
 * @va: first byte of the range
 * @len: length of the range in bytes
 * @flags: as for sodp_umem_prefetch()
 * @stop: called before each chunk, may be NULL; when it returns true the
 *	prefetch ends there and returns 0
 * @arg: argument of @stop
 *
 * For the asynchronous prefetch of ibv_advise_mr() (sodp_advise.c),
 * whose work item holds the MR but should not fault gigabytes for an MR
 * that is being destroyed: @stop tells it so.
 *
 * Context: process context. May sleep; @stop is called without sodp locks.
 * Return: as sodp_umem_prefetch().
 */
int sodp_umem_prefetch_until(struct sodp_umem *umem, u64 va, u64 len,
			     unsigned int flags, bool (*stop)(void *arg),
			     void *arg)
{
	bool write = flags & SODP_PREFETCH_WRITE;
	struct sodp_fault_req req = { .need = ULONG_MAX };
	unsigned long pgidx, last;
	u64 end;
	int ret = 0;

	might_sleep();
	if (check_add_overflow(va, len, &end) || va < umem->va_start ||
	    end > umem->va_end)
		return -ERANGE;
	if (flags & ~(SODP_PREFETCH_WRITE | SODP_PREFETCH_NO_FAULT))
		return -EINVAL;
	if (!len)
		return 0;
	if (write && !umem->writable)
		return -EFAULT;
	/* Pairs with sodp_umem_leave() below. */
	ret = sodp_umem_enter(umem);
	if (ret)
		return ret;

	sodp_count(umem, SODP_CNT_PREFETCHES, 1);
	if (!(flags & SODP_PREFETCH_NO_FAULT))
		req.hmm_flags = HMM_PFN_REQ_FAULT |
				(write ? HMM_PFN_REQ_WRITE : 0);

	req.pfns = kmalloc_array(SODP_CHUNK_PAGES, sizeof(*req.pfns),
				 GFP_KERNEL);
	if (!req.pfns) {
		ret = -ENOMEM;
		goto out_leave;
	}
	/* Pairs with mmput() below. */
	if (!mmget_not_zero(umem->mm)) {
		ret = -EFAULT;
		goto out_free_pfns;
	}

	last = (end - 1) >> PAGE_SHIFT;
	for (pgidx = va >> PAGE_SHIFT; pgidx <= last; pgidx = req.end) {
		struct sodp_mirror *mirror;

		if (stop && stop(arg))
			break;
		/* Being released: the faults still to come would fail. */
		if (READ_ONCE(umem->dying)) {
			ret = -EFAULT;
			break;
		}
		if (!req.hmm_flags) {
			pgidx = sodp_prefetch_skip_hole(umem->mm, pgidx);
			if (pgidx > last)
				break;
		}

		mutex_lock(&umem->fault_mutex);
		mirror = sodp_mirror_get_locked(umem, pgidx);
		if (IS_ERR(mirror)) {
			ret = PTR_ERR(mirror);
			mutex_unlock(&umem->fault_mutex);
			break;
		}
		req.first = pgidx;
		req.end = min3(last + 1, (pgidx | SODP_CHUNK_MASK) + 1,
			       mirror->end >> PAGE_SHIFT);
		req.published = 0;
		ret = sodp_table_prepare(umem, pgidx);
		if (!ret)
			ret = sodp_range_fault_locked(umem, mirror, &req);
		/* Nothing mirrored (a hole, an error): keep no memory for it. */
		if (ret || !req.published)
			sodp_umem_reclaim_locked(umem,
						 pgidx >> SODP_CHUNK_SHIFT);
		mutex_unlock(&umem->fault_mutex);
		if (ret)
			break;
		sodp_count(umem, SODP_CNT_PAGES_FAULTED, req.published);
		cond_resched();
	}
	ret = sodp_fault_errno(ret);

	mmput(umem->mm);
out_free_pfns:
	kfree(req.pfns);
out_leave:
	sodp_umem_leave(umem);
	return ret;
}

/**
 * sodp_umem_prefetch() - fault or map a range into the mirror ahead of use
 * @umem: the umem
 * @va: first byte of the range
 * @len: length of the range in bytes
 * @flags: SODP_PREFETCH_WRITE to fault with write permission,
 *	SODP_PREFETCH_NO_FAULT to only mirror what is already present
 *
 * Works chunk by chunk (2 MiB of VA), releasing the fault mutex between
 * chunks. Only the mirror table is filled; the pinned cache is filled by
 * the data path. Implements ib_device_ops.advise_mr's PREFETCH,
 * PREFETCH_WRITE and PREFETCH_NO_FAULT; asynchronous prefetch is the
 * driver's work item, which must keep the umem alive.
 *
 * Context: process context. May sleep.
 * Return: 0, -ERANGE, -EINVAL (unknown flags), -EFAULT, -ENOMEM, -EBUSY;
 * see include/rdma/sodp.h. A range partly prefetched before an error stays
 * mirrored.
 */
int sodp_umem_prefetch(struct sodp_umem *umem, u64 va, u64 len,
		       unsigned int flags)
{
	return sodp_umem_prefetch_until(umem, va, len, flags, NULL, NULL);
}
EXPORT_SYMBOL_GPL(sodp_umem_prefetch);
