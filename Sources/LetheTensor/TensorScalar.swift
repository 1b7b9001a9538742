import CBLAS
import Foundation

/// The element types a tensor holds: Float for training, Double for gradient checks.
public protocol TensorScalar: BinaryFloatingPoint, Sendable, CustomStringConvertible where RawSignificand: FixedWidthInteger {
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
                     a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
                     beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    static func erf(_ x: Self) -> Self
    static var dtypeName: String { get }
}

@inline(__always) private func blasTrans(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float: TensorScalar {
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, blasTrans(transA), blasTrans(transB), Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
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
}

extension Double: TensorScalar {
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
                            a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                            beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        cblas_dgemm(CblasRowMajor, blasTrans(transA), blasTrans(transB), Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    @inline(__always) public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    @inline(__always) public static func log(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) public static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
    @inline(__always) public static func erf(_ x: Double) -> Double { Foundation.erf(x) }
    public static var dtypeName: String { "F64" }
}

/// OpenBLAS threading. Bits of a gemm depend on the thread count, so the count is set once per run
/// and recorded with it.
public enum BLAS {
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
