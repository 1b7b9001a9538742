import CBLAS
import CSmallProducts
import Testing

@testable import LetheTensor

/// Small float products through libxsmm: the layouts it has kernels for, each against the Double
/// product (transposes, strided operands, beta 0 and 1, ragged sizes); the layouts and sizes it must
/// leave to OpenBLAS; the default per OpenBLAS kernel; `LETHE_SMALL_PRODUCTS`.
@Suite struct SmallProductsTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var m, n, k: Int
        var transA, transB: Bool
        var pad: Int  // extra columns of every operand's rows (lda, ldb, ldc beyond the minimum)
        var beta: Float
        var testDescription: String {
            "\(m)x\(n)x\(k) \(transA ? "T" : "N")\(transB ? "T" : "N") pad \(pad) beta \(beta)"
        }
    }
    static let cases = [
        Case(m: 48, n: 48, k: 32, transA: false, transB: false, pad: 0, beta: 0),
        Case(m: 48, n: 32, k: 48, transA: true, transB: false, pad: 0, beta: 1),
        Case(m: 7, n: 13, k: 5, transA: false, transB: false, pad: 3, beta: 1),
        Case(m: 33, n: 1, k: 17, transA: true, transB: false, pad: 5, beta: 0),
        Case(m: 128, n: 128, k: 128, transA: false, transB: false, pad: 0, beta: 0),
        Case(m: 48, n: 48, k: 32, transA: false, transB: true, pad: 2, beta: 0),  // no libxsmm kernel
        Case(m: 129, n: 16, k: 16, transA: false, transB: false, pad: 0, beta: 1),  // above the limit
    ]

    /// op(A) op(B) + beta C through `Float.gemm` with `library`, and the same in Double.
    static func product(_ t: Case, _ library: SmallProducts) -> (Float: [Float], Double: [Double]) {
        var rng = Philox(seed: 11)
        let (rowsA, colsA) = t.transA ? (t.k, t.m) : (t.m, t.k)
        let (rowsB, colsB) = t.transB ? (t.n, t.k) : (t.k, t.n)
        let (lda, ldb, ldc) = (colsA + t.pad, colsB + t.pad, t.n + t.pad)
        let a = (0..<(rowsA * lda)).map { _ in Float(rng.normal()) }
        let b = (0..<(rowsB * ldb)).map { _ in Float(rng.normal()) }
        var c = (0..<(t.m * ldc)).map { _ in Float(rng.normal()) }
        var expected = c.map(Double.init)
        for i in 0..<t.m {
            for j in 0..<t.n {
                var sum = 0.0
                for p in 0..<t.k {
                    let x = Double(t.transA ? a[p * lda + i] : a[i * lda + p])
                    let y = Double(t.transB ? b[j * ldb + p] : b[p * ldb + j])
                    sum += x * y
                }
                expected[i * ldc + j] = sum + Double(t.beta) * expected[i * ldc + j]
            }
        }
        // The library is passed, not set: a process-wide switch would change the bits of tests beside.
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    let (a, b, c) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
                    let viaLibxsmm = SmallProducts.run(
                        transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: 1, a: a, lda: lda, b: b,
                        ldb: ldb, beta: t.beta, c: c, ldc: ldc, library: library)
                    let routed = library == .libxsmm && !t.transB && max(t.m, t.n, t.k) <= SmallProducts.limit
                    #expect(viaLibxsmm == routed, "\(t.testDescription) via \(library)")
                    if !viaLibxsmm {
                        cblas_sgemm(
                            CblasRowMajor, t.transA ? CblasTrans : CblasNoTrans, t.transB ? CblasTrans : CblasNoTrans,
                            Int32(t.m), Int32(t.n), Int32(t.k), 1, a, Int32(lda), b, Int32(ldb), t.beta, c, Int32(ldc))
                    }
                }
            }
        }
        return (c, expected)
    }

    @Test(arguments: cases, SmallProducts.allCases)
    func everyLibraryComputesTheProduct(_ t: Case, library: SmallProducts) {
        let (c, expected) = Self.product(t, library)
        let ldc = t.n + t.pad
        var worst = 0.0
        for i in 0..<t.m {
            for j in 0..<ldc {
                let at = i * ldc + j
                // Columns beyond n are padding: never written.
                if j >= t.n {
                    #expect(Double(c[at]) == expected[at])
                } else {
                    worst = max(worst, abs(Double(c[at]) - expected[at]))
                }
            }
        }
        #expect(worst < 1e-4 * Double(t.k).squareRoot(), "\(t.testDescription) via \(library)")
    }

    /// libxsmm itself has kernels for the layouts routed to it (so the path above is not OpenBLAS
    /// in disguise), and none for a transposed B, which the Swift side therefore never sends.
    @Test func libxsmmHasKernelsForTheLayoutsRoutedToIt() {
        let a = [Float](repeating: 1, count: 64 * 64)
        let b = [Float](repeating: 2, count: 64 * 64)
        var c = [Float](repeating: 0, count: 64 * 64)
        func run(_ transA: Bool, _ transB: Bool) -> Int32 {
            lethe_xsmm_sgemm(transA ? 1 : 0, transB ? 1 : 0, 48, 40, 32, a, 64, b, 64, 0, &c, 64)
        }
        #expect(run(false, false) == 1)
        #expect(c[0] == 64 && c[39] == 64 && c[40] == 0)  // 32 products of 1 x 2; ldc 64, n 40
        #expect(run(true, false) == 1)
        #expect(run(false, true) == 0)
        #expect(lethe_xsmm_sgemm(0, 0, 8, 8, 8, a, 8, b, 8, 0.5, &c, 8) == 0)  // beta other than 0 or 1
    }

    @Test func theDefaultFollowsOpenBLASsKernel() {
        #expect(SmallProducts.preferred(forBLASCore: "Cooperlake") == .openblas)
        #expect(SmallProducts.preferred(forBLASCore: "SkylakeX") == .openblas)
        #expect(SmallProducts.preferred(forBLASCore: "SAPPHIRERAPIDS") == .openblas)
        #expect(SmallProducts.preferred(forBLASCore: "Haswell") == .libxsmm)
        #expect(SmallProducts.preferred(forBLASCore: "Zen") == .libxsmm)
    }

    @Test func theEnvironmentVariablePicksALibrary() throws {
        for library in SmallProducts.allCases {
            #expect(try SmallProducts(environment: ["LETHE_SMALL_PRODUCTS": library.rawValue.uppercased()]) == library)
        }
        #expect(try SmallProducts(environment: [:]) == nil)  // unset or empty: the default stays
        #expect(try SmallProducts(environment: ["LETHE_SMALL_PRODUCTS": ""]) == nil)
        #expect(throws: SmallProducts.Failure.unknown("mkl")) {
            try SmallProducts(environment: ["LETHE_SMALL_PRODUCTS": "mkl"])
        }
        #expect(
            SmallProducts.Failure.unknown("mkl").description
                == "LETHE_SMALL_PRODUCTS=mkl: no such library (openblas, libxsmm)")
    }
}
