/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints of the sodp core. Every event carries the umem id that the
 * debug messages print too.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM sodp

#if !defined(_SODP_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _SODP_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(sodp_fault,
	    TP_PROTO(u32 id, u64 va, u64 npages, bool write, int ret),
	    TP_ARGS(id, va, npages, write, ret),
	    TP_STRUCT__entry(__field(u32, id)
			     __field(u64, va)
			     __field(u64, npages)
			     __field(bool, write)
			     __field(int, ret)
			     ),
	    TP_fast_assign(__entry->id = id;
			   __entry->va = va;
			   __entry->npages = npages;
			   __entry->write = write;
			   __entry->ret = ret;
			   ),
	    TP_printk("umem%u va=0x%llx published=%llu write=%d ret=%d",
		      __entry->id, __entry->va, __entry->npages, __entry->write,
		      __entry->ret)
);

TRACE_EVENT(sodp_invalidate,
	    TP_PROTO(u32 id, u64 start, u64 end, int event, bool blockable,
		     u64 npages, bool ok),
	    TP_ARGS(id, start, end, event, blockable, npages, ok),
	    TP_STRUCT__entry(__field(u32, id)
			     __field(u64, start)
			     __field(u64, end)
			     __field(int, event)
			     __field(bool, blockable)
			     __field(u64, npages)
			     __field(bool, ok)
			     ),
	    TP_fast_assign(__entry->id = id;
			   __entry->start = start;
			   __entry->end = end;
			   __entry->event = event;
			   __entry->blockable = blockable;
			   __entry->npages = npages;
			   __entry->ok = ok;
			   ),
	    TP_printk("umem%u [0x%llx, 0x%llx) event=%d blockable=%d pages=%llu ok=%d",
		      __entry->id, __entry->start, __entry->end, __entry->event,
		      __entry->blockable, __entry->npages, __entry->ok)
);

TRACE_EVENT(sodp_recall,
	    TP_PROTO(u32 id, u64 start, u64 end, unsigned int nrecalled,
		     unsigned int nwaited),
	    TP_ARGS(id, start, end, nrecalled, nwaited),
	    TP_STRUCT__entry(__field(u32, id)
			     __field(u64, start)
			     __field(u64, end)
			     __field(unsigned int, nrecalled)
			     __field(unsigned int, nwaited)
			     ),
	    TP_fast_assign(__entry->id = id;
			   __entry->start = start;
			   __entry->end = end;
			   __entry->nrecalled = nrecalled;
			   __entry->nwaited = nwaited;
			   ),
	    TP_printk("umem%u [0x%llx, 0x%llx) recalled=%u waited=%u",
		      __entry->id, __entry->start, __entry->end,
		      __entry->nrecalled, __entry->nwaited)
);

DECLARE_EVENT_CLASS(sodp_cache_class,
		    TP_PROTO(u32 id, u64 va, bool write),
		    TP_ARGS(id, va, write),
		    TP_STRUCT__entry(__field(u32, id)
				     __field(u64, va)
				     __field(bool, write)
				     ),
		    TP_fast_assign(__entry->id = id;
				   __entry->va = va;
				   __entry->write = write;
				   ),
		    TP_printk("umem%u va=0x%llx write=%d",
			      __entry->id, __entry->va, __entry->write)
);

DEFINE_EVENT(sodp_cache_class, sodp_cache_hit,
	     TP_PROTO(u32 id, u64 va, bool write),
	     TP_ARGS(id, va, write)
);

DEFINE_EVENT(sodp_cache_class, sodp_cache_miss,
	     TP_PROTO(u32 id, u64 va, bool write),
	     TP_ARGS(id, va, write)
);

TRACE_EVENT(sodp_deferral,
	    TP_PROTO(u32 id),
	    TP_ARGS(id),
	    TP_STRUCT__entry(__field(u32, id)
			     ),
	    TP_fast_assign(__entry->id = id;
			   ),
	    TP_printk("umem%u",
		      __entry->id)
);

#endif /* _SODP_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE sodp_trace
#include <trace/define_trace.h>
