import Foundation

/// Reusable scratch memory for large temporaries (im2col columns). glibc serves blocks over 32 MiB
/// with a fresh mmap each time, so a 100 MB temporary allocated every call costs a page fault and a
/// kernel zeroing per 4 KiB page, every step; blocks taken from this pool stay resident. Any number
/// of callers may hold blocks at once (each gets its own); at most `keep` idle blocks are kept.
enum Scratch {
    private final class Pool: @unchecked Sendable {
        let lock = NSLock()
        var idle: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
    }
    private static let pool = Pool()
    static let keep = 8

    /// Runs `body` with `count` elements of scratch memory, zero-filled when `zeroed`, otherwise
    /// uninitialised (the body must write before it reads).
    static func with<T: TensorScalar, R>(
        _ type: T.Type = T.self, count: Int, zeroed: Bool,
        _ body: (UnsafeMutablePointer<T>) throws -> R
    ) rethrows -> R {
        let bytes = max(64, count * MemoryLayout<T>.stride)
        let taken: (pointer: UnsafeMutableRawPointer, bytes: Int)? = pool.lock.withLock {
            // The smallest idle block that fits.
            guard
                let i = pool.idle.indices.filter({ pool.idle[$0].bytes >= bytes }).min(by: {
                    pool.idle[$0].bytes < pool.idle[$1].bytes
                })
            else { return nil }
            return pool.idle.remove(at: i)
        }
        let block = taken ?? (UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64), bytes)
        defer {
            pool.lock.withLock {
                pool.idle.append(block)
                if pool.idle.count > keep,
                    let smallest = pool.idle.indices.min(by: { pool.idle[$0].bytes < pool.idle[$1].bytes })
                {
                    pool.idle.remove(at: smallest).pointer.deallocate()
                }
            }
        }
        let typed = block.pointer.bindMemory(to: T.self, capacity: count)
        if zeroed { typed.initialize(repeating: 0, count: count) }
        return try body(typed)
    }
}
