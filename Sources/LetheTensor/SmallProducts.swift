import CSmallProducts
import Synchronization

/// The library that runs the tensor core's small float products (no dimension above
/// `SmallProducts.limit`: the attention's per-head products, the Winograd products of a block).
///
/// OpenBLAS packs both operands of every product; its SkylakeX, Cooperlake and SapphireRapids
/// kernels have small-matrix paths that skip that, its other kernels (Haswell, which the development
/// and CI machines pin, and Zen) do not, and there the packing costs more than the product:
/// libxsmm's kernels, generated for one shape and layout, ran the MAE step's attention products
/// 1.4-2.3x and the Winograd products 1.6x faster than OpenBLAS Haswell on Zen 4, and equally or
/// slower than OpenBLAS Cooperlake (`bench/small-products/run.sh`, README: Benchmark). So the default
/// follows OpenBLAS's kernel; `LETHE_SMALL_PRODUCTS` (or `Numerics.use(smallProducts:)`) picks one.
/// The two differ in a product's last bits, never in its threads (both run each small product on
/// the calling thread, as strict mode needs), and a run records the one it used in provenance.json.
public enum SmallProducts: String, CaseIterable, Sendable, CustomStringConvertible {
    case openblas
    case libxsmm

    /// The largest m, n and k a product may have to go to libxsmm.
    public static let limit = 128

    public var description: String { rawValue }

    /// The default for an OpenBLAS kernel: OpenBLAS where it has small-matrix kernels, else libxsmm.
    public static func preferred(forBLASCore core: String) -> SmallProducts {
        ["skylakex", "cooperlake", "sapphirerapids"].contains(core.lowercased()) ? .openblas : .libxsmm
    }

    /// The environment variable that picks one for a process (`LETHE_SMALL_PRODUCTS=openblas`).
    public static let environmentVariable = "LETHE_SMALL_PRODUCTS"

    /// The library `environment` names (any case); nil when it names none (unset or empty).
    public init?(environment: [String: String]) throws(Failure) {
        guard let name = environment[Self.environmentVariable], !name.isEmpty else { return nil }
        guard let library = Self(rawValue: name.lowercased()) else { throw .unknown(name) }
        self = library
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unknown(String)
        public var description: String {
            switch self {
            case .unknown(let name):
                "\(SmallProducts.environmentVariable)=\(name): no such library (\(SmallProducts.allCases.map(\.rawValue).joined(separator: ", ")))"
            }
        }
    }
}

/// The choice in use: -1 until first read (then `preferred` for OpenBLAS's kernel), else a case's index.
private let smallProductsInUse = Atomic<Int>(-1)

extension Numerics {
    /// The library running small float products now.
    public static var smallProducts: SmallProducts {
        let code = smallProductsInUse.load(ordering: .relaxed)
        if code >= 0 { return SmallProducts.allCases[code] }
        let preferred = SmallProducts.preferred(forBLASCore: blasCore)
        smallProductsInUse.store(SmallProducts.allCases.firstIndex(of: preferred)!, ordering: .relaxed)
        return preferred
    }

    /// Use `library` for small products from now on (process-wide: call it while holding
    /// `Numerics.exclusively` when other work may be running).
    public static func use(smallProducts library: SmallProducts) {
        smallProductsInUse.store(SmallProducts.allCases.firstIndex(of: library)!, ordering: .relaxed)
    }

    /// Applies `LETHE_SMALL_PRODUCTS` from `environment` when it is set (and non-empty); the
    /// command-line tool calls this at start-up, so a bad value stops it before any work.
    public static func useSmallProducts(from environment: [String: String]) throws(SmallProducts.Failure) {
        if let library = try SmallProducts(environment: environment) { use(smallProducts: library) }
    }
}

extension SmallProducts {
    /// Runs the row-major product through libxsmm when `library` (by default the one in use) is
    /// libxsmm and it has a kernel for the product (alpha 1, beta 0 or 1, every dimension at most
    /// `limit`, B not transposed: libxsmm 1.17 has no kernel for that layout); false when the caller
    /// must run it through OpenBLAS.
    @inline(__always)
    static func run(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
        library: SmallProducts = Numerics.smallProducts
    ) -> Bool {
        guard library == .libxsmm, m <= limit, n <= limit, k <= limit, k > 0, !transB, alpha == 1,
            beta == 0 || beta == 1
        else { return false }
        return lethe_xsmm_sgemm(
            transA ? 1 : 0, 0, Int32(m), Int32(n), Int32(k), a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc)) != 0
    }
}
