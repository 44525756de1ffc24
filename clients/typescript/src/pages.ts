/**
 * Cursor paging as async iteration: `for await (const event of client.inbox())` walks every page,
 * fetching the next one only when the loop gets there. Breaking out of the loop fetches nothing more.
 */

/** The paging fields every list response carries. */
export interface CursorPage {
  readonly next_cursor: string | null
  readonly has_more: boolean
}

/** Yields the items of each page, following next_cursor until has_more is false. */
export async function * paginate<P extends CursorPage, T> (
  fetchPage: (cursor: string | undefined) => Promise<P>,
  items: (page: P) => readonly T[],
): AsyncGenerator<T, void, undefined> {
  let cursor: string | undefined
  for (;;) {
    const page = await fetchPage(cursor)
    yield * items(page)
    if (!page.has_more || page.next_cursor === null) return
    cursor = page.next_cursor
  }
}
