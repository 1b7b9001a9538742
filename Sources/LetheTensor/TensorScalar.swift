import CBLAS
import Synchronization
import CShims
import Foundation

/// The element types a tensor holds: Float for training, Double for gradient checks.
public protocol TensorScalar: BinaryFloatingPoint, Sendable, CustomStringConvertible
where RawSignificand: FixedWidthInteger {
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    static func erf(_ x: Self) -> Self
    static var dtypeName: String { get }
    /// dst[i] += src[i] for i in 0..<count.
    static func add(_ src: UnsafePointer<Self>, into dst: UnsafeMutablePointer<Self>, count: Int)
    /// The sum of `count` elements (Float: eight partials in a fixed order).
    static func sum(_ x: UnsafePointer<Self>, count: Int) -> Self
    /// The sum of (a[i] - b[i])^2 over `count` elements (Float: as `sum`, eight partials in a fixed order).
    static func sumSquaredDifference(_ a: UnsafePointer<Self>, _ b: UnsafePointer<Self>, count: Int) -> Self
    /// out[j] += sum over rows r of x[r * columns + j].
    static func addColumnSums(_ x: UnsafePointer<Self>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Self>)
    /// Softmax of each row of the (rows, n) matrix at x, in place.
    static func softmaxRows(_ x: UnsafeMutablePointer<Self>, rows: Int, n: Int)
    /// dx = scale * y * (g - sum(g * y)) for each row: softmax's backward from its output y.
    static func softmaxBackwardRows(
        y: UnsafePointer<Self>, g: UnsafePointer<Self>, dx: UnsafeMutablePointer<Self>, rows: Int, n: Int, scale: Self)
}

extension TensorScalar {
    /// Sums of each row of the (rows, x.count / rows) matrix `x`, rows in parallel.
    static func rowSums(_ x: [Self], rows: Int) -> [Self] {
        let n = rows == 0 ? 0 : x.count / rows
        return x.withUnsafeBufferPointer { xp in
            let src = UncheckedSendable(xp.baseAddress!)
            return filledArray(count: rows) { out in
                Parallel.run(rows) { r in out[r] = sum(src.value + r * n, count: n) }
            }
        }
    }

    /// Sums over the rows of the (x.count / columns, columns) matrix `x`, in row order.
    static func columnSums(_ x: [Self], columns: Int) -> [Self] {
        var out = [Self](repeating: 0, count: columns)
        guard columns > 0 else { return out }
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer {
                addColumnSums(xp.baseAddress!, rows: xp.count / columns, columns: columns, into: $0.baseAddress!)
            }
        }
        return out
    }
}

@inline(__always) private func blasTrans(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float: TensorScalar {
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        BLAS.count(m: m, n: n, k: k)
        BLAS.call(BLAS.Product(m: m, n: n, k: k, transA: transA, transB: transB)) {
            if SmallProducts.run(
                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                beta: beta, c: c, ldc: ldc)
            {
                return
            }
            cblas_sgemm(
                CblasRowMajor, blasTrans(transA), blasTrans(transB), Int32(m), Int32(n), Int32(k),
                alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }
    @inline(__always) public static func exp(_ x: Float) -> Float { Foundation.exp(x) }
    @inline(__always) public static func log(_ x: Float) -> Float { Foundation.log(x) }
    @inline(__always) public static func tanh(_ x: Float) -> Float { Foundation.tanh(x) }
    /// A rational minimax approximation on [-4, 4] (erf is 1 to float precision beyond): within 1e-6
    /// relative and 5e-7 absolute of libm, branch-free so loops over it vectorise.
    @inline(__always) public static func erf(_ x: Float) -> Float {
        let z = Swift.min(Swift.max(x, -4), 4)
        let z2 = z * z
        var p: Float = -2.72614225801306e-10
        p = p * z2 + 2.77068142495902e-08
        p = p * z2 - 2.10102402082508e-06
        p = p * z2 - 5.69250639462346e-05
        p = p * z2 - 7.34990630326855e-04
        p = p * z2 - 2.95459980854025e-03
        p = p * z2 - 1.60960333262415e-02
        var q: Float = -1.45660718464996e-05
        q = q * z2 - 2.13374055278905e-04
        q = q * z2 - 1.68282697438203e-03
        q = q * z2 - 7.37332916720468e-03
        q = q * z2 - 1.42647390514189e-02
        return z * p / q
    }
    public static var dtypeName: String { "F32" }
    @inline(__always) public static func add(
        _ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int
    ) { lethe_add(dst, src, count) }
    @inline(__always) public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Float { lethe_sum(x, count) }
    @inline(__always) public static func sumSquaredDifference(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int
    ) -> Float {
        lethe_sum_squared_difference(a, b, count)
    }
    @inline(__always) public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        lethe_softmax_rows(x, rows, n)
    }
    @inline(__always) public static func softmaxBackwardRows(
        y: UnsafePointer<Float>, g: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, rows: Int, n: Int,
        scale: Float
    ) {
        lethe_softmax_backward_rows(y, g, dx, rows, n, scale)
    }
    @inline(__always) public static func addColumnSums(
        _ x: UnsafePointer<Float>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>
    ) {
        lethe_column_sums(x, rows, columns, out)
    }
}

extension Double: TensorScalar {
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        BLAS.count(m: m, n: n, k: k)
        BLAS.call(BLAS.Product(m: m, n: n, k: k, transA: transA, transB: transB)) {
            cblas_dgemm(
                CblasRowMajor, blasTrans(transA), blasTrans(transB), Int32(m), Int32(n), Int32(k),
                alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }
    @inline(__always) public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    @inline(__always) public static func log(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) public static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
    @inline(__always) public static func erf(_ x: Double) -> Double { Foundation.erf(x) }
    public static var dtypeName: String { "F64" }
    public static func add(_ src: UnsafePointer<Double>, into dst: UnsafeMutablePointer<Double>, count: Int) {
        for i in 0..<count { dst[i] += src[i] }
    }
    public static func softmaxRows(_ x: UnsafeMutablePointer<Double>, rows: Int, n: Int) {
        for r in 0..<rows {
            let row = x + r * n
            var mx = -Double.infinity
            for j in 0..<n { mx = Swift.max(mx, row[j]) }
            var z: Double = 0
            for j in 0..<n {
                row[j] = Foundation.exp(row[j] - mx)
                z += row[j]
            }
            for j in 0..<n { row[j] /= z }
        }
    }
    public static func softmaxBackwardRows(
        y: UnsafePointer<Double>, g: UnsafePointer<Double>, dx: UnsafeMutablePointer<Double>, rows: Int, n: Int,
        scale: Double
    ) {
        for r in 0..<rows {
            var s: Double = 0
            for j in 0..<n { s += g[r * n + j] * y[r * n + j] }
            for j in 0..<n { dx[r * n + j] = scale * y[r * n + j] * (g[r * n + j] - s) }
        }
    }
    public static func addColumnSums(
        _ x: UnsafePointer<Double>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Double>
    ) {
        for r in 0..<rows { for j in 0..<columns { out[j] += x[r * columns + j] } }
    }
    public static func sum(_ x: UnsafePointer<Double>, count: Int) -> Double {
        var s: Double = 0
        for i in 0..<count { s += x[i] }
        return s
    }
    public static func sumSquaredDifference(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, count: Int)
        -> Double
    {
        var s: Double = 0
        for i in 0..<count { s += (a[i] - b[i]) * (a[i] - b[i]) }
        return s
    }
}

/// OpenBLAS threading. Bits of a gemm depend on the thread count, and OpenBLAS has one process-wide
/// count, so every product goes through `call`, which gives it the count its caller wants and keeps
/// anyone else from changing the count under it:
///
/// - a product runs under a shared lock while OpenBLAS's count is the one it wants (one thread in
///   strict mode and inside `Parallel.blocksWithSerialBLAS`, whose blocks already use the threads;
///   `Numerics.threads` otherwise), so products wanting the same count run side by side;
/// - a product that wants another count first changes it under the lock held exclusively, which waits
///   until no product runs, so the count never changes under a running product.
///
/// Two runs (or tests) in one process, or a block-parallel op beside a multi-threaded product, can then
/// never change each other's bits. (Before, `blocksWithSerialBLAS` set the process-wide count to 1 and
/// back, so a concurrent fast-mode product could run single-threaded and differ in its last bits.)
public enum BLAS {
    private static let gate = ReadWriteLock()
    /// OpenBLAS's process-wide count as last set here (read and written under the gate).
    nonisolated(unsafe) private static var current = -1

    /// The thread count the calling thread's products use now.
    public static var threads: Int {
        Numerics.mode == .strict || lethe_serial_blas_depth() > 0 ? 1 : Numerics.threads
    }

    /// A BLAS or LAPACK call that is not a gemm of the tensor core (the statistics' products, the
    /// self-check): gated the same way, never recorded.
    @inline(__always) static func call(_ product: () -> Void) { run(product) }

    /// A gemm of the tensor core, recorded by shape inside `recordingProducts`.
    @inline(__always) static func call(_ shape: Product, _ product: () -> Void) {
        if recording.load(ordering: .relaxed) { return timed(shape, product) }
        run(product)
    }

    @inline(__always) private static func run(_ product: () -> Void) {
        let wanted = threads
        // Products that want the count OpenBLAS has run side by side under the shared lock; one that
        // wants another count changes it exclusively first (never while a product runs) and retries.
        while true {
            gate.readLock()
            if current == wanted {
                product()
                gate.unlock()
                return
            }
            gate.unlock()
            gate.writeLock()
            if current != wanted { setCount(wanted) }
            gate.unlock()
        }
    }

    private static func setCount(_ n: Int) {
        openblas_set_num_threads(Int32(n))
        current = n
    }

    /// A product's shape as the caller asked for it (row-major; `transA`/`transB` as in `gemm`).
    public struct Product: Hashable, Sendable, CustomStringConvertible {
        public var m, n, k: Int
        public var transA, transB: Bool
        public var flops: Int { 2 * m * n * k }
        public var description: String { "\(m)x\(n)x\(k) \(transA ? "T" : "N")\(transB ? "T" : "N")" }
    }

    /// Calls and seconds (summed over the threads that ran them) of the products of one shape.
    public struct ProductTime: Sendable, Equatable {
        public var calls = 0
        public var seconds = 0.0
    }

    private static let recording = Atomic<Bool>(false)
    private static let recorded = Mutex<[Product: ProductTime]>([:])

    /// Runs `body` and returns how many products of each shape it ran through OpenBLAS and how long
    /// they took, for `lethe bench --products` (where a step's time goes). Recording is process-wide:
    /// products that other threads run meanwhile are counted too. Outside it a product pays one
    /// relaxed atomic load.
    public static func recordingProducts(_ body: () throws -> Void) rethrows -> [Product: ProductTime] {
        recorded.withLock { $0 = [:] }
        recording.store(true, ordering: .relaxed)
        defer { recording.store(false, ordering: .relaxed) }
        try body()
        return recorded.withLock { $0 }
    }

    private static func timed(_ shape: Product, _ product: () -> Void) {
        let start = DispatchTime.now().uptimeNanoseconds
        run(product)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        recorded.withLock {
            $0[shape, default: ProductTime()].calls += 1
            $0[shape, default: ProductTime()].seconds += seconds
        }
    }

    private static let executed = Atomic<Int>(0)
    /// Floating-point operations (2 m n k per product) of every gemm run so far in this process, and
    /// the multiply-adds of the direct convolution kernels, which are products computed outside BLAS,
    /// for `lethe bench`'s achieved GFLOP/s; read the difference around the work you measure.
    public static var flops: Int { executed.load(ordering: .relaxed) }
    @inline(__always) static func count(m: Int, n: Int, k: Int) {
        executed.wrappingAdd(2 * m * n * k, ordering: .relaxed)
    }
}

/// A pthread read-write lock.
final class ReadWriteLock: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    init() { pthread_rwlock_init(lock, nil) }
    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }
    @inline(__always) func readLock() { pthread_rwlock_rdlock(lock) }
    @inline(__always) func writeLock() { pthread_rwlock_wrlock(lock) }
    @inline(__always) func unlock() { pthread_rwlock_unlock(lock) }
}
