/*
 * arena.c — the memory one loaded policy lives in: its document tree, its
 * domains and their name index, bump-allocated from a few large blocks
 * and given back all at once with the policy.
 *
 * Why: the first touch of a page costs a page fault, and in a guest whose
 * page tables the host shadows (PVM, or any VM without nested paging) a
 * fault costs 11 to 17 us, even when the page was populated in advance:
 * the host fills its shadow entry on the first access.  A policy of 10k
 * domains is some 3 MiB in 40k objects; built from malloc, the first hot
 * swaps of such a policy spent three quarters of their time in 800 and
 * more faults, whenever glibc's heap had not yet held two of them, or had
 * given the pages of large chunks back (its mmap threshold).
 *
 * So a freed arena's blocks are not unmapped but kept, the pages it used
 * still faulted in, for the next arena: one policy's worth (the last
 * freed), which is what the next update of a policy of the same size
 * builds in while the old one still serves.  fb_arena_reserve() makes
 * that room ahead of time, so that only the very first large policy pays
 * for its pages: a proxy calls it once an update is answered, off the
 * path of the next one.  And a block of 2 MiB or more is made of huge
 * pages, where the kernel has them: the very first large policy then
 * faults some 100 times, not 1600 (a 10k-domain update: 5 ms, not 19).
 * An idle proxy that never loaded a large policy keeps nothing.
 *
 * Under AddressSanitizer the blocks come from malloc, whose chunks
 * LeakSanitizer scans for pointers (a node in the arena may hold the only
 * pointer to a malloc'd text), and all room not handed out, kept blocks
 * too, is poisoned.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "policy/internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif

#define ARENA_ALIGN 16
#ifdef ARENA_ASAN
#define ARENA_REDZONE 16 /* poisoned after each object, as malloc's redzone:
			  * an overflow into the next one is reported */
#else
#define ARENA_REDZONE 0
#endif
/* a cap on the room fb_arena_reserve makes, and so on what it costs the
 * loop (a fault a page) and the memory it holds for an update to come */
#define ARENA_RESERVE_MAX (64u << 20)
#define ARENA_MIN_BLOCK (64 * 1024)
/* an estimate can be far off: no first block larger than this */
#define ARENA_MAX_FIRST (8u << 20)
/* blocks this large are made of huge pages (see map_huge) */
#define HUGE_PAGE (2u << 20)

struct block {
	struct block *next;
	size_t size; /* of the whole block, this header included */
	size_t used;
};

struct fb_arena {
	struct block *blocks; /* the newest first: the one allocated from */
	size_t total;         /* bytes in all blocks */
	size_t used;          /* bytes handed out, headers included */
	size_t next_size;     /* the least the next new block holds */
};

/* Blocks of freed arenas, faulted in, for the next ones.  Policies are
 * loaded and freed on more than one thread in some programs. */
static struct {
	pthread_mutex_t lock;
	struct block *blocks;
	size_t total;
} spare = { .lock = PTHREAD_MUTEX_INITIALIZER };

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

static size_t header_size(void)
{
	return round_up(sizeof(struct block), ARENA_ALIGN);
}

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

#ifndef ARENA_ASAN
/*
 * `size` bytes (a multiple of HUGE_PAGE) at a HUGE_PAGE boundary, marked
 * for transparent huge pages: the kernel then fills 2 MiB at one fault
 * where it would take 512, and on a host that shadows the guest's page
 * tables a fault is what costs (some 0.2 us a 4 KiB page inside a huge
 * one, against 11-17 us for a page of its own).  Where the kernel makes
 * no huge pages, the advice is ignored and the pages come one by one.
 */
static void *map_huge(size_t size)
{
	char *raw = mmap(NULL, size + HUGE_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *at;

	if (raw == MAP_FAILED)
		return MAP_FAILED;
	at = (char *)round_up((uintptr_t)raw, HUGE_PAGE);
	if (at > raw)
		munmap(raw, (size_t)(at - raw));
	munmap(at + size, (size_t)(raw + HUGE_PAGE - at));
	madvise(at, size, MADV_HUGEPAGE);
	return at;
}
#endif

/* A new block of `size` bytes (a multiple of the page size), untouched;
 * a large one is whole huge pages, and may be larger. */
static struct block *block_map(size_t size)
{
	struct block *b;

#ifdef ARENA_ASAN
	b = malloc(size);
	if (!b)
		return NULL;
#else
	if (size >= HUGE_PAGE) {
		size = round_up(size, HUGE_PAGE);
		b = map_huge(size);
	} else {
		b = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	if (b == MAP_FAILED)
		return NULL;
#endif
	b->size = size;
	return b;
}

static void block_unmap(struct block *b)
{
#ifdef ARENA_ASAN
	ASAN_UNPOISON_MEMORY_REGION(b, b->size);
	free(b);
#else
	munmap(b, b->size);
#endif
}

/* Empty `b` and poison what it holds. */
static void block_reset(struct block *b)
{
	b->used = header_size();
	ASAN_POISON_MEMORY_REGION((char *)b + b->used, b->size - b->used);
}

/* A kept block with room for `need` bytes past its header, or NULL. */
static struct block *spare_take(size_t need)
{
	struct block **at, *b = NULL;

	pthread_mutex_lock(&spare.lock);
	for (at = &spare.blocks; *at; at = &(*at)->next) {
		if ((*at)->size - header_size() >= need) {
			b = *at;
			*at = b->next;
			spare.total -= b->size;
			break;
		}
	}
	pthread_mutex_unlock(&spare.lock);
	return b;
}

/* Keep `list` (linked by next); then unmap the oldest kept blocks, those
 * past the first `keep` bytes. */
static void spare_put(struct block *list, size_t keep)
{
	struct block *drop = NULL, **at;
	size_t total = 0;

	pthread_mutex_lock(&spare.lock);
	while (list) {
		struct block *b = list;

		list = b->next;
		block_reset(b);
		b->next = spare.blocks;
		spare.blocks = b;
		spare.total += b->size;
	}
	for (at = &spare.blocks; *at; at = &(*at)->next) {
		if (total >= keep) {
			drop = *at;
			*at = NULL;
			break;
		}
		total += (*at)->size;
	}
	for (struct block *b = drop; b; b = b->next)
		spare.total -= b->size;
	pthread_mutex_unlock(&spare.lock);
	while (drop) {
		struct block *b = drop;

		drop = b->next;
		block_unmap(b);
	}
}

struct fb_arena *fb_arena_new(size_t estimate)
{
	struct fb_arena *arena = calloc(1, sizeof(*arena));

	if (arena)
		arena->next_size = estimate < ARENA_MAX_FIRST ? estimate
							      : ARENA_MAX_FIRST;
	return arena;
}

/* What an object of `size` bytes takes of a block. */
static size_t room_for(size_t size)
{
	return round_up(size ? size : 1, ARENA_ALIGN) + ARENA_REDZONE;
}

void *fb_arena_alloc(struct fb_arena *arena, size_t size)
{
	struct block *b = arena->blocks;
	size_t asked = size;
	void *p;

	if (size > SIZE_MAX / 4)
		return NULL;
	size = room_for(size);
	/* the first with room: a large object that did not fit in a block
	 * took a new one, and what is left of the old is used still */
	while (b && b->size - b->used < size)
		b = b->next;
	if (!b) {
		size_t want = arena->next_size > arena->total ? arena->next_size
							      : arena->total;

		if (want < header_size() + size)
			want = header_size() + size;
		if (want < ARENA_MIN_BLOCK)
			want = ARENA_MIN_BLOCK;
		b = spare_take(size);
		if (!b) {
			b = block_map(round_up(want, page_size()));
			if (!b)
				return NULL;
			block_reset(b);
		}
		b->next = arena->blocks;
		arena->blocks = b;
		arena->total += b->size;
		arena->used += header_size();
	}
	p = (char *)b + b->used;
	b->used += size;
	arena->used += size;
	ASAN_UNPOISON_MEMORY_REGION(p, asked);
	return p;
}

void fb_arena_shrink(struct fb_arena *arena, void *p, size_t size,
		     size_t keep)
{
	size_t had = room_for(size), now = room_for(keep);
	struct block *b;

	if (!p || now >= had)
		return;
	for (b = arena->blocks; b; b = b->next)
		if ((char *)p + had == (char *)b + b->used)
			break;
	if (!b)
		return; /* not the last in its block: the room stays */
	b->used -= had - now;
	arena->used -= had - now;
	ASAN_POISON_MEMORY_REGION((char *)p + keep, size - keep);
}

void *fb_arena_calloc(struct fb_arena *arena, size_t n, size_t size)
{
	void *p;

	if (size && n > SIZE_MAX / size)
		return NULL;
	p = fb_arena_alloc(arena, n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

size_t fb_arena_used(const struct fb_arena *arena)
{
	return arena ? arena->used : 0;
}

void fb_arena_clear(struct fb_arena *arena)
{
	if (!arena || !arena->blocks)
		return;
	spare_put(arena->blocks, SIZE_MAX); /* trimmed when one is freed */
	arena->blocks = NULL;
	arena->total = arena->used = 0;
}

void fb_arena_free(struct fb_arena *arena)
{
	if (!arena)
		return;
	/* one arena's worth: this one's, the newest kept */
	if (arena->blocks)
		spare_put(arena->blocks, arena->total);
	free(arena);
}

void fb_arena_reserve(size_t bytes)
{
	size_t page = page_size(), have;
	struct block *b;

	bytes += bytes / 8; /* the ends of blocks too small for what came */
	if (bytes > ARENA_RESERVE_MAX)
		bytes = ARENA_RESERVE_MAX;
	pthread_mutex_lock(&spare.lock);
	have = spare.total;
	pthread_mutex_unlock(&spare.lock);
	if (have >= bytes)
		return;
	b = block_map(round_up(bytes - have, page));
	if (!b)
		return; /* the next arena maps its own */
	/* a write, not MADV_POPULATE_WRITE: the host's shadow entry of a
	 * page is made on its first access, which populating does not do */
	for (size_t off = 0; off < b->size; off += page)
		((volatile char *)b)[off] = 0;
	b->next = NULL;
	spare_put(b, bytes);
}
