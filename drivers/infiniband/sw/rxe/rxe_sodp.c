// SPDX-License-Identifier: GPL-2.0
/*
 * rxe memory regions served by sodp instead of pinned pages.
 *
 * An MR registered with IB_ACCESS_ON_DEMAND (or any user MR when the sodp
 * pin_mode says so) holds a sodp umem instead of an ib_umem. Every data
 * access of such an MR (rxe_mr_copy(), the atomics, FLUSH) is translated
 * here into a sodp access at the user virtual address behind the iova.
 * All of them run in rxe's work queue, so they may sleep and fault.
 */

#include <linux/ioport.h>
#include <linux/libnvdimm.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <rdma/ib_verbs.h>
#include <rdma/sodp.h>

#include "rxe.h"
#include "rxe_loc.h"
#include "rxe_sodp.h"
#include "sodp_version.h"

/*
 * A range that keeps being invalidated while we fault it makes sodp return
 * -EBUSY; that is the mm at work, not an error of the peer, so try again a
 * few times before failing the access.
 */
#define RXE_SODP_BUSY_RETRIES	8

/* The access flags that need the pages mapped writable. */
#define RXE_SODP_WRITE_ACCESS	(IB_ACCESS_LOCAL_WRITE | \
				 IB_ACCESS_REMOTE_WRITE | \
				 IB_ACCESS_REMOTE_ATOMIC)

static u64 rxe_sodp_va(struct rxe_mr *mr, u64 iova)
{
	/* mr_check_range() has bounded iova - mr->ibmr.iova by the length. */
	return sodp_umem_start(mr->sodp) + (iova - mr->ibmr.iova);
}

static bool rxe_sodp_implicit(u64 start, u64 length)
{
	return start == 0 && length == U64_MAX;
}

/**
 * rxe_sodp_wants_mr() - should a user MR be served by sodp from the start?
 * @rxe: the device
 * @access: IB access flags of the registration
 *
 * Context: process context.
 * Return: true for ODP registrations and, with sodp.pin_mode=all, for every
 * user MR.
 */
bool rxe_sodp_wants_mr(struct rxe_dev *rxe, int access)
{
	return (access & IB_ACCESS_ON_DEMAND) ||
	       sodp_pin_mode() == SODP_PIN_MODE_ALL;
}

/**
 * rxe_sodp_may_fallback() - may a plain MR that could not be pinned use sodp?
 * @err: the errno ib_umem_get() returned
 *
 * With sodp.pin_mode=auto, memory that long-term pinning refuses (FS-DAX
 * files: -EOPNOTSUPP, writable shared file mappings: -EFAULT) is served by
 * sodp instead; rxe_sodp_mr_init_user() still fails with -EFAULT if the
 * range is not mapped with the needed permission. -EFAULT also means memory
 * that is off limits (secretmem, VM_IO/VM_PFNMAP): sodp's own registration
 * refuses that with -EFAULT, so the fallback never serves it.
 *
 * Context: process context.
 * Return: true if the registration should be retried through sodp.
 */
bool rxe_sodp_may_fallback(int err)
{
	return sodp_pin_mode() == SODP_PIN_MODE_AUTO &&
	       (err == -EOPNOTSUPP || err == -EFAULT);
}

/**
 * rxe_sodp_mr_init_user() - set up a user MR over a sodp umem
 * @rxe: the device
 * @start: user virtual address of the region
 * @length: length of the region (start 0 and length U64_MAX: implicit ODP)
 * @access: IB access flags
 * @mr: the MR, initialised by rxe_mr_init()
 *
 * Nothing is pinned and nothing is charged to RLIMIT_MEMLOCK. An ODP MR is
 * mirrored lazily. A plain MR served by sodp (pin_mode auto/all) is faulted
 * in completely now, like pinning would, so that registering memory that
 * is not mapped still fails with -EFAULT; its pages are not held after.
 *
 * Context: process context, current->mm is the owner of the region.
 * Return: 0 or a negative errno (-EINVAL, -EFAULT, -ENOMEM, ...).
 */
int rxe_sodp_mr_init_user(struct rxe_dev *rxe, u64 start, u64 length,
			  int access, struct rxe_mr *mr)
{
	unsigned int flags = 0;
	struct sodp_umem *umem;
	int err;

	if (rxe_sodp_implicit(start, length)) {
		if (!(access & IB_ACCESS_ON_DEMAND))
			return -EINVAL;
		flags |= SODP_UMEM_IMPLICIT;
	}

	umem = sodp_umem_get(current->mm, start, length, access, flags,
			     rxe->sodp_stats);
	if (IS_ERR(umem)) {
		rxe_dbg_mr(mr, "sodp_umem_get failed, err = %ld\n",
			   PTR_ERR(umem));
		return PTR_ERR(umem);
	}
	mr->sodp = umem;

	if (!(access & IB_ACCESS_ON_DEMAND)) {
		unsigned int pf = 0;

		if (access & RXE_SODP_WRITE_ACCESS)
			pf |= SODP_PREFETCH_WRITE;
		err = sodp_umem_prefetch(umem, start, length, pf);
		if (err)
			goto out_release;
	}

	mr->ibmr.type = IB_MR_TYPE_USER;
	mr->state = RXE_MR_STATE_VALID;
	return 0;

out_release:
	mr->sodp = NULL;
	sodp_umem_release(umem);
	return err;
}

/**
 * rxe_sodp_mr_fence() - end the faults of an MR that is being deregistered
 * @mr: the MR; nothing is done for an MR that is not served by sodp
 *
 * rxe_cleanup() waits for the references to an MR with a timeout, then
 * frees it anyway; a responder or requester holding one may be blocked in
 * a fault for longer than that (page_mkwrite on a frozen filesystem). Make
 * later faults of the MR fail and wait for those in flight, so the
 * references are dropped long before the timeout and nothing is freed
 * under a fault.
 *
 * Context: process context, may sleep for as long as a fault in flight.
 */
void rxe_sodp_mr_fence(struct rxe_mr *mr)
{
	sodp_umem_fence(mr->sodp);
}

/**
 * rxe_sodp_qp_quiesce() - end the work of a QP that is being destroyed
 * @qp: the QP; rxe_destroy_qp() has checked that it may be destroyed
 *
 * rxe_cleanup() waits for the references to a QP with a timeout, then
 * frees it anyway. Its tasks hold references while they run, and the
 * packet or WQE they serve another; a task may be blocked in a sodp fault
 * for longer than the timeout (a remote WRITE into a shared file mapping
 * on a frozen file system). Mark the QP invalid, as rxe_qp_do_cleanup()
 * does later: the receive path drops its packets from now on and each
 * task, at its next step, only flushes. Then wait for the run of each
 * task in flight, however long its fault takes. Afterwards the references
 * left are only those of short flushes and transmitted packets.
 *
 * Context: process context, may sleep for as long as a fault in flight.
 */
void rxe_sodp_qp_quiesce(struct rxe_qp *qp)
{
	unsigned long flags;

	spin_lock_irqsave(&qp->state_lock, flags);
	qp->valid = 0;
	spin_unlock_irqrestore(&qp->state_lock, flags);

	/*
	 * The tasks check qp->valid under state_lock at every step, so a
	 * run that starts after this sees it; flush_work() waits for the
	 * run in flight (a task that requeues itself only flushes).
	 */
	if (qp->recv_task.func)
		flush_work(&qp->recv_task.work);
	if (qp->send_task.func)
		flush_work(&qp->send_task.work);
}

/**
 * rxe_sodp_mr_cleanup() - drop the sodp umem of an MR
 * @mr: the MR being destroyed
 *
 * Waits for in-flight accesses, removes the mirror's notifiers and drops
 * every page reference (invariant 7).
 *
 * Context: process or work queue context, may sleep.
 */
void rxe_sodp_mr_cleanup(struct rxe_mr *mr)
{
	sodp_umem_release(mr->sodp);
	mr->sodp = NULL;
}

/**
 * rxe_sodp_check_rereg() - may a sodp MR change its access flags?
 * @mr: the MR
 * @flags: IB_MR_REREG_* flags of the request
 * @access: the new access flags
 *
 * The umem mirrors with the permissions given at registration: an MR
 * cannot gain write access it was not registered with, nor move between
 * on-demand and no-pin registration, without a new translation.
 *
 * Context: process context.
 * Return: 0, -EACCES for new write access, -EOPNOTSUPP for a change of
 * IB_ACCESS_ON_DEMAND.
 */
int rxe_sodp_check_rereg(struct rxe_mr *mr, int flags, int access)
{
	if (!(flags & IB_MR_REREG_ACCESS))
		return 0;
	if ((access ^ mr->access) & IB_ACCESS_ON_DEMAND)
		return -EOPNOTSUPP;
	if ((access & RXE_SODP_WRITE_ACCESS) &&
	    !(mr->access & RXE_SODP_WRITE_ACCESS))
		return -EACCES;
	return 0;
}

/**
 * rxe_sodp_mr_copy() - copy between a kernel buffer and a sodp MR
 * @mr: the MR, already range-checked by the caller
 * @iova: first byte in the MR's iova space
 * @addr: kernel buffer
 * @length: bytes to copy
 * @dir: RXE_TO_MR_OBJ writes the MR, RXE_FROM_MR_OBJ reads it
 *
 * Context: sleepable (rxe's work queue); may fault pages in.
 * Return: 0, or -EFAULT when the pages cannot be had with the needed
 * permission (the caller turns it into an access error), or another
 * negative errno.
 */
int rxe_sodp_mr_copy(struct rxe_mr *mr, u64 iova, void *addr,
		     unsigned int length, enum rxe_mr_copy_dir dir)
{
	u64 va = rxe_sodp_va(mr, iova);
	int tries = 0;
	int err;

	do {
		if (dir == RXE_TO_MR_OBJ)
			err = sodp_umem_copy_to(mr->sodp, va, addr, length, 0);
		else
			err = sodp_umem_copy_from(mr->sodp, va, addr, length,
						  0);
	} while (err == -EBUSY && ++tries < RXE_SODP_BUSY_RETRIES);

	if (err)
		rxe_dbg_mr(mr, "sodp copy of %u bytes at %#llx failed, err = %d\n",
			   length, va, err);
	return err;
}

/* Lease the aligned u64 at iova for writing; returns a resp_states value. */
static int rxe_sodp_lease_u64(struct rxe_mr *mr, u64 iova,
			      struct sodp_access *acc, u64 **p)
{
	u64 va;
	void *kaddr;
	int tries = 0;
	int err;

	if (mr_check_range(mr, iova, sizeof(u64)))
		return RESPST_ERR_RKEY_VIOLATION;

	va = rxe_sodp_va(mr, iova);
	if (va & (sizeof(u64) - 1))
		return RESPST_ERR_MISALIGNED_ATOMIC;

	do {
		err = sodp_umem_access_begin(mr->sodp, va, sizeof(u64),
					     SODP_WRITE, acc, &kaddr);
	} while (err == -EBUSY && ++tries < RXE_SODP_BUSY_RETRIES);
	if (err) {
		rxe_dbg_mr(mr, "atomic target %#llx not accessible, err = %d\n",
			   va, err);
		return RESPST_ERR_RKEY_VIOLATION;
	}

	*p = kaddr;
	return 0;
}

/**
 * rxe_sodp_mr_atomic_op() - CMP_SWAP or FETCH_ADD on a sodp MR
 * @mr: the MR
 * @iova: target in the MR's iova space
 * @opcode: IB_OPCODE_RC_COMPARE_SWAP or IB_OPCODE_RC_FETCH_ADD
 * @compare: compare value (CMP_SWAP)
 * @swap_add: swap or add value
 * @orig_val: returns the value before the operation
 *
 * The operation is a real CPU atomic on the leased page, so it is atomic
 * against the process itself as well as against other RDMA atomics.
 *
 * Context: sleepable (rxe's work queue); may fault the page in.
 * Return: 0 or a resp_states error (RESPST_ERR_RKEY_VIOLATION,
 * RESPST_ERR_MISALIGNED_ATOMIC), like rxe_mr_do_atomic_op().
 */
int rxe_sodp_mr_atomic_op(struct rxe_mr *mr, u64 iova, int opcode,
			  u64 compare, u64 swap_add, u64 *orig_val)
{
	struct sodp_access acc;
	u64 *p, old;
	int err;

	err = rxe_sodp_lease_u64(mr, iova, &acc, &p);
	if (err)
		return err;

	if (opcode == IB_OPCODE_RC_COMPARE_SWAP) {
		old = cmpxchg64(p, compare, swap_add);
	} else {
		old = READ_ONCE(*p);
		while (!try_cmpxchg64(p, &old, old + swap_add))
			;
	}
	*orig_val = old;

	sodp_umem_access_end(&acc);
	return 0;
}

/**
 * rxe_sodp_mr_atomic_write() - ATOMIC_WRITE of 8 bytes to a sodp MR
 * @mr: the MR
 * @iova: target in the MR's iova space
 * @value: the value to store
 *
 * Context: sleepable (rxe's work queue); may fault the page in.
 * Return: 0 or a resp_states error, like rxe_mr_do_atomic_write().
 */
int rxe_sodp_mr_atomic_write(struct rxe_mr *mr, u64 iova, u64 value)
{
	struct sodp_access acc;
	u64 *p;
	int err;

	err = rxe_sodp_lease_u64(mr, iova, &acc, &p);
	if (err)
		return err;

	/* Ordered after all prior writes of this QP, see IBA A19.4.2. */
	smp_store_release(p, value);

	sodp_umem_access_end(&acc);
	return 0;
}

/* Is @page persistent memory, as the resource tree describes it? */
static bool rxe_sodp_page_persistent(struct page *page)
{
	int hit = region_intersects(page_to_phys(page), PAGE_SIZE,
				    IORESOURCE_MEM,
				    IORES_DESC_PERSISTENT_MEMORY);

	return hit == REGION_INTERSECTS;
}

/**
 * rxe_sodp_mr_flush() - make a range of a sodp MR persistent
 * @mr: the MR
 * @iova: first byte in the MR's iova space
 * @length: bytes to flush
 *
 * The FLUSH with persistence placement (rxe_flush_pmem_iova()). Pages that
 * are not resident have nothing in the CPU caches, but a FLUSH must still
 * fail on memory the process cannot access, so the range is faulted like a
 * read. A pinned MR with IB_ACCESS_FLUSH_PERSISTENT is refused at
 * registration unless every page is persistent memory; a sodp MR's pages
 * are only known when they are faulted, so each page is checked here and
 * a range that is not all persistent memory fails, instead of claiming
 * persistence for DRAM.
 *
 * Context: sleepable (rxe's work queue).
 * Return: 0, -EFAULT for memory the process cannot access or that is not
 * persistent memory, or another negative errno.
 */
int rxe_sodp_mr_flush(struct rxe_mr *mr, u64 iova, unsigned int length)
{
	u64 va;
	int err;

	err = mr_check_range(mr, iova, length);
	if (err)
		return err;

	va = rxe_sodp_va(mr, iova);
	while (length) {
		unsigned int bytes = min_t(unsigned int, length,
					   PAGE_SIZE - offset_in_page(va));
		struct sodp_access acc;
		void *kaddr;

		err = sodp_umem_access_begin(mr->sodp, va, bytes, 0, &acc,
					     &kaddr);
		if (err)
			return err;
		/* rxe needs INFINIBAND_VIRT_DMA: no highmem, kaddr is linear. */
		if (!rxe_sodp_page_persistent(virt_to_page(kaddr))) {
			sodp_umem_access_end(&acc);
			return -EFAULT;
		}
		arch_wb_cache_pmem(kaddr, bytes);
		sodp_umem_access_end(&acc);

		va += bytes;
		length -= bytes;
	}
	return 0;
}

/**
 * rxe_sodp_init_device_param() - advertise on-demand paging
 * @rxe: the device being set up
 *
 * Advertises exactly what the selftests prove: explicit and implicit ODP;
 * on RC: SEND, RECV, WRITE, READ, ATOMIC and SRQ receive; on UD: SEND,
 * RECV and SRQ receive.
 *
 * Context: device setup, process context.
 */
void rxe_sodp_init_device_param(struct rxe_dev *rxe)
{
	struct ib_odp_caps *caps = &rxe->attr.odp_caps;

	rxe->attr.kernel_cap_flags |= IBK_ON_DEMAND_PAGING;
	caps->general_caps = IB_ODP_SUPPORT | IB_ODP_SUPPORT_IMPLICIT;
	caps->per_transport_caps.rc_odp_caps = IB_ODP_SUPPORT_SEND |
					       IB_ODP_SUPPORT_RECV |
					       IB_ODP_SUPPORT_WRITE |
					       IB_ODP_SUPPORT_READ |
					       IB_ODP_SUPPORT_ATOMIC |
					       IB_ODP_SUPPORT_SRQ_RECV;
	caps->per_transport_caps.ud_odp_caps = IB_ODP_SUPPORT_SEND |
					       IB_ODP_SUPPORT_RECV |
					       IB_ODP_SUPPORT_SRQ_RECV;
}

/**
 * rxe_sodp_dev_init() - allocate the sodp counters of a new device
 * @rxe: the device, not registered yet
 *
 * Every sodp MR of @rxe counts there, and rxe_ib_get_hw_stats() reports
 * them after rxe's own counters.
 *
 * Context: device setup, process context.
 * Return: 0 or -ENOMEM.
 */
int rxe_sodp_dev_init(struct rxe_dev *rxe)
{
	rxe->sodp_stats = sodp_dev_stats_alloc();
	return rxe->sodp_stats ? 0 : -ENOMEM;
}

/**
 * rxe_sodp_dev_cleanup() - drop the sodp counters of a device being freed
 * @rxe: the device; rxe_sodp_dev_init() may have failed or not run
 *
 * Context: dealloc_driver, process context.
 */
void rxe_sodp_dev_cleanup(struct rxe_dev *rxe)
{
	sodp_dev_stats_put(rxe->sodp_stats);
	rxe->sodp_stats = NULL;
}

/*
 * The sodp hw counters of rxe, in the order of their names after
 * RXE_CNT_SODP_PAGE_FAULTS in rxe_counter_descs[]. rxe never defers an
 * access (it may always fault), so it has no deferrals counter.
 */
static const enum sodp_dev_counter rxe_sodp_hw_ids[] = {
	SODP_DEV_PAGE_FAULTS,
	SODP_DEV_PAGES_FAULTED,
	SODP_DEV_PAGE_INVALIDATIONS,
	SODP_DEV_PAGES_INVALIDATED,
	SODP_DEV_PAGE_PREFETCH,
	SODP_DEV_CACHE_HITS,
	SODP_DEV_CACHE_MISSES,
	SODP_DEV_CACHE_RECALLS,
	SODP_DEV_PAGES_HELD,
};

/**
 * rxe_sodp_get_hw_stats() - read the sodp hw counters of a device
 * @rxe: the device
 * @values: where the first of them (RXE_CNT_SODP_PAGE_FAULTS) goes
 *
 * Context: any (get_hw_stats).
 */
void rxe_sodp_get_hw_stats(struct rxe_dev *rxe, u64 *values)
{
	BUILD_BUG_ON(ARRAY_SIZE(rxe_sodp_hw_ids) !=
		     RXE_NUM_OF_STATS - RXE_CNT_SODP_PAGE_FAULTS);

	sodp_dev_stats_read(rxe->sodp_stats, rxe_sodp_hw_ids,
			    ARRAY_SIZE(rxe_sodp_hw_ids), values);
}

/**
 * rxe_sodp_fill_stat_mr_entry() - per-MR sodp counters for rdma statistic
 * @msg: the netlink message being built
 * @ibmr: the MR
 *
 * Context: process context (netlink dump).
 * Return: 0, or -EMSGSIZE when the message is full.
 */
int rxe_sodp_fill_stat_mr_entry(struct sk_buff *msg, struct ib_mr *ibmr)
{
	struct rxe_mr *mr = to_rmr(ibmr);

	if (!mr->sodp)
		return 0;
	return sodp_umem_fill_stat_entry(mr->sodp, msg);
}

/* Stops an asynchronous prefetch early once its MR is being destroyed. */
static bool rxe_sodp_mr_dying(void *arg)
{
	struct rxe_mr *mr = arg;
	struct rxe_dev *rxe = to_rdev(mr->ibmr.device);
	struct rxe_mr *found;

	/* rxe_cleanup() erases the index before it waits for references. */
	found = rxe_pool_get_index(&rxe->mr_pool, mr->elem.index);
	if (!found)
		return true;
	rxe_put(found);
	return found != mr;
}

static void rxe_sodp_mr_put(void *arg)
{
	struct rxe_mr *mr = arg;

	rxe_put(mr);
}

static const struct sodp_advise_ops rxe_sodp_advise_ops = {
	.owner = THIS_MODULE,
	.put = rxe_sodp_mr_put,
	.dying = rxe_sodp_mr_dying,
};

/**
 * rxe_sodp_advise_mr() - ibv_advise_mr() for sodp MRs
 * @ibpd: protection domain of the MRs
 * @advice: PREFETCH, PREFETCH_WRITE or PREFETCH_NO_FAULT
 * @flags: IB_UVERBS_ADVISE_MR_FLAG_FLUSH makes the call synchronous
 * @sg_list: ranges given by lkey, address and length
 * @num_sge: entries in @sg_list
 * @attrs: uverbs attributes (unused)
 *
 * The prefetch itself is sodp_advise_submit()'s: without FLUSH a work item
 * holds a reference on every MR until it is done, so it never outlives
 * them, and stops early when an MR is destroyed meanwhile.
 *
 * Context: process context.
 * Return: 0; -EOPNOTSUPP for an unknown advice or flag; -EINVAL for an
 * lkey that does not name an ODP MR of @ibpd with the needed access, or a
 * range outside it; with FLUSH, the errno of the first failing prefetch
 * (-EFAULT for memory that cannot be faulted); -ENOMEM.
 */
int rxe_sodp_advise_mr(struct ib_pd *ibpd,
		       enum ib_uverbs_advise_mr_advice advice, u32 flags,
		       struct ib_sge *sg_list, u32 num_sge,
		       struct uverbs_attr_bundle *attrs)
{
	struct rxe_pd *pd = to_rpd(ibpd);
	struct sodp_advise *adv;
	bool write;
	u32 i;

	adv = sodp_advise_alloc(advice, flags, num_sge, &rxe_sodp_advise_ops,
				&write);
	if (IS_ERR(adv))
		return PTR_ERR(adv);

	for (i = 0; i < num_sge; i++) {
		struct ib_sge *sge = &sg_list[i];
		struct rxe_mr *mr;

		mr = lookup_mr(pd, write ? IB_ACCESS_LOCAL_WRITE : 0,
			       sge->lkey, RXE_LOOKUP_LOCAL);
		if (!mr)
			goto err_abort;
		if (!mr->sodp || !(mr->access & IB_ACCESS_ON_DEMAND) ||
		    mr_check_range(mr, sge->addr, sge->length)) {
			rxe_put(mr);
			goto err_abort;
		}
		sodp_advise_add(adv, mr, mr->sodp, rxe_sodp_va(mr, sge->addr),
				sge->length);
	}
	return sodp_advise_submit(adv);

err_abort:
	sodp_advise_abort(adv);
	return -EINVAL;
}

/* Tells this build from the stock one (modinfo, DKMS's version check). */
MODULE_VERSION(SODP_VERSION);
