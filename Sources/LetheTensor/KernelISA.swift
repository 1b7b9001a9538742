import CShims

/// The instruction set Lethe's own C kernels run in. Each kernel is built once per set (portable,
/// AVX2 + FMA, AVX-512) into the same binary; a process uses the widest its CPU runs unless
/// `LETHE_ISA` (or `Numerics.use(isa:)`) names a narrower one. The sets may differ in a result's last
/// bits (FMA contraction, register allocation), never in the order of a sum, so each is thread-count
/// independent; a run records the one it used in provenance.json.
public enum KernelISA: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The architecture's baseline (SSE2 on x86-64).
    case portable
    /// x86-64-v3: AVX2 and FMA (Haswell, Zen 1 and later).
    case avx2
    /// x86-64-v4: AVX-512 F, BW, CD, DQ and VL (Skylake-SP, Zen 4 and later).
    case avx512

    var code: Int32 {
        switch self {
        case .portable: Int32(LETHE_ISA_PORTABLE)
        case .avx2: Int32(LETHE_ISA_AVX2)
        case .avx512: Int32(LETHE_ISA_AVX512)
        }
    }

    init(code: Int32) {
        self = Self.allCases.first { $0.code == code } ?? .portable
    }

    public var description: String { rawValue }

    /// The widest set this CPU and its OS run.
    public static var best: KernelISA { KernelISA(code: lethe_isa_best()) }

    /// Every set this CPU runs, narrowest first.
    public static var supported: [KernelISA] { allCases.filter { $0.code <= best.code } }

    /// The environment variable that picks a narrower set for a process (`LETHE_ISA=avx2`).
    public static let environmentVariable = "LETHE_ISA"

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unknown(String)
        case unsupported(KernelISA, best: KernelISA)

        public var description: String {
            switch self {
            case .unknown(let name):
                "\(KernelISA.environmentVariable)=\(name): no such instruction set (\(KernelISA.allCases.map(\.rawValue).joined(separator: ", ")))"
            case .unsupported(let isa, let best):
                "\(KernelISA.environmentVariable)=\(isa): this CPU does not run \(isa) (the widest it runs is \(best))"
            }
        }
    }
}

extension Numerics {
    /// The instruction set the C kernels use now.
    public static var isa: KernelISA { KernelISA(code: lethe_isa_active()) }

    /// Use `isa` for every kernel from now on (process-wide: call it while holding
    /// `Numerics.exclusively` when other work may be running).
    public static func use(isa: KernelISA) throws(KernelISA.Failure) {
        guard lethe_isa_use(isa.code) != 0 else { throw .unsupported(isa, best: KernelISA.best) }
    }

    /// Applies `LETHE_ISA` from `environment` when it is set (and non-empty); the command-line tool
    /// calls this at start-up, so a bad value stops it before any work.
    public static func useISA(from environment: [String: String]) throws(KernelISA.Failure) {
        guard let name = environment[KernelISA.environmentVariable], !name.isEmpty else { return }
        guard let isa = KernelISA(rawValue: name.lowercased()) else { throw .unknown(name) }
        try use(isa: isa)
    }

    /// Runs `body` with the kernels in `isa`, then restores the set in use before; holds the numeric
    /// core alone meanwhile.
    public static func with<R>(isa: KernelISA, _ body: () throws -> R) throws -> R {
        try exclusively {
            let before = Numerics.isa
            try use(isa: isa)
            defer { _ = lethe_isa_use(before.code) }
            return try body()
        }
    }
}
