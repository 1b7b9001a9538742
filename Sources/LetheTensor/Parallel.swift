import CBLAS
import Foundation
import Dispatch
import Synchronization
import CShims

/// How the numeric core uses the cores. Set once per run (the thread count is part of a run's
/// provenance):
/// - `fast`: OpenBLAS uses `threads` threads; results are bitwise reproducible for a given thread
///   count on a given machine.
/// - `strict`: OpenBLAS runs single-threaded and Lethe splits every large product into fixed row
///   blocks run in parallel, so results are bitwise identical for any thread count.
/// Lethe's own loops split work into chunks whose size never depends on the thread count, so they are
/// thread-count independent in both modes.
public enum Numerics {
    public enum Mode: String, Sendable, CaseIterable { case fast, strict }

    private static let threadCount = Atomic<Int>(1)
    private static let strictMode = Atomic<Bool>(false)

    public static var threads: Int { threadCount.load(ordering: .relaxed) }
    public static var mode: Mode { strictMode.load(ordering: .relaxed) ? .strict : .fast }

    public static func configure(threads: Int, mode: Mode) {
        keepFreedMemory()
        let n = max(1, threads)
        threadCount.store(n, ordering: .relaxed)
        strictMode.store(mode == .strict, ordering: .relaxed)
    }

    private static let owner = NSRecursiveLock()

    /// Runs `body` holding the numeric core alone. Its settings (thread count, mode, OpenBLAS's
    /// threads) are process-wide, so two runs in one process (a library user's, or tests running in
    /// parallel) would change them under each other; every run takes this lock for its whole length.
    public static func exclusively<R>(_ body: () throws -> R) rethrows -> R {
        owner.lock()
        defer { owner.unlock() }
        return try body()
    }

    /// Training allocates and frees the same large buffers every step. By default glibc hands blocks
    /// over 128 KiB back to the kernel, so every step faults in freshly zeroed pages; keeping freed
    /// memory in the heap makes those buffers cheap to reuse. (Only the speed changes, never a value.)
    static func keepFreedMemory() { lethe_keep_freed_memory() }

    /// OpenBLAS's kernel for this CPU; bits of a product can differ between kernels.
    public static var blasCore: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }
}

public enum Parallel {
    /// Runs `body(i)` for i in 0..<count, dealt round-robin to up to `Numerics.threads` threads.
    /// Tasks must write disjoint memory.
    static func run(_ count: Int, _ body: (Int) -> Void) {
        let threads = min(Numerics.threads, count)
        if threads <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            // The tasks write disjoint memory, which is what makes sharing `body` across threads safe.
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                var i = t
                while i < count {
                    shared.value(i)
                    i += threads
                }
            }
        }
    }

    /// Runs `body(i)` for i in 0..<count over the threads with OpenBLAS single-threaded meanwhile, for
    /// independent blocks of work that each call BLAS (serially, `parallel: false`): the threads go to
    /// the blocks rather than into each small product. Every product then runs on one thread with
    /// shapes fixed by the blocks, so the results do not depend on the thread count in either mode.
    /// The single-threading is per thread (`lethe_serial_blas_enter`), never a change of OpenBLAS's
    /// process-wide count that another thread's product could run under (see `BLAS.call`).
    static func blocksWithSerialBLAS(_ count: Int, _ body: (Int) -> Void) {
        run(count) { i in
            lethe_serial_blas_enter()
            defer { lethe_serial_blas_leave() }
            body(i)
        }
    }

    /// `body(i)` for i in 0..<count over the numeric core's threads (each call on one thread, with
    /// OpenBLAS single-threaded inside it), results in index order: the same values for any thread count.
    public static func map<R>(count: Int, _ body: (Int) -> R) -> [R] {
        var out = [R?](repeating: nil, count: count)
        out.withUnsafeMutableBufferPointer { p in
            let slots = UncheckedSendable(p.baseAddress!)
            blocksWithSerialBLAS(count) { i in slots.value[i] = body(i) }
        }
        return out.map { $0! }
    }

    /// 0..<n in chunks of `grain` (the last may be shorter).
    static func chunks(_ n: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        guard n > 0 else { return }
        let count = (n + grain - 1) / grain
        run(count) { i in body((i * grain)..<min(n, (i + 1) * grain)) }
    }

    /// The sum of `partial(chunk)` over 0..<n in chunks of `elementGrain`, chunks in parallel and their
    /// partials added in chunk order: the same bits for any thread count.
    static func chunkSums<T: TensorScalar>(_ n: Int, _ partial: (Range<Int>) -> T) -> T {
        let grain = elementGrain
        var partials = [T](repeating: 0, count: (n + grain - 1) / grain)
        partials.withUnsafeMutableBufferPointer { p in
            let out = UncheckedSendable(p.baseAddress!)
            chunks(n, grain: grain) { r in out.value[r.lowerBound / grain] = partial(r) }
        }
        var total: T = 0
        for p in partials { total += p }
        return total
    }

    /// Elements per chunk for elementwise loops: big enough to amortise scheduling.
    static let elementGrain = 16_384
}

struct UncheckedSendable<V>: @unchecked Sendable {
    let value: V
    init(_ value: V) { self.value = value }
}
