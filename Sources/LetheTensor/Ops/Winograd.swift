// Winograd F(4x4, 3x3) for stride-1 3x3 convolutions (Lavin & Gray, 2016).
//
// Each 4x4 tile of output is Y = A^T [(G g G^T) ⊙ (B^T d B)] A, with d the 6x6 input tile it reads
// and g a 3x3 kernel. Over a block of images the elementwise product becomes 36 independent products
// (one per position ξ of the 6x6 transformed tile): M_ξ (O, tiles) = U_ξ (O, C) x V_ξ (C, tiles),
// with 36 multiplications per tile and channel pair where direct convolution needs 144 (F(2x2, 3x3)
// needs 64 for the same four tiles). The interpolation points are 0, ±1, ±2 and ∞, so the transforms'
// coefficients stay small (at most 8 and 1/24) and Float results stay within a few 1e-6 of the direct
// sum's (the tests compare against it). Backward: the weight gradient is dU_ξ = dM_ξ V_ξ^T with
// dM = A dY A^T, mapped back by dg = G^T dU G; the input gradient is the transposed convolution,
// itself a stride-1 3x3 convolution.
//
//   B^T = [4  0 -5  0  1  0       G = [ 1/4     0     0       A^T = [1  1  1  1  1  0
//          0 -4 -4  1  1  0            -1/6  -1/6  -1/6              0  1 -1  2 -2  0
//          0  4 -4 -1  1  0            -1/6   1/6  -1/6              0  1  1  4  4  0
//          0 -2 -1  2  1  0             1/24  1/12  1/6              0  1 -1  8 -8  1]
//          0  2 -1 -2  1  0             1/24 -1/12  1/6
//          0  4  0 -5  0  1]            0     0     1  ]
//
// The Float transforms run in C (CShims/winograd.c), vectorised; the Double path runs here, by the matrices
// above.

import CShims

/// The F(4x4, 3x3) matrices, row-major.
enum WinogradMatrices {
    static let bt: [Double] = [
        4, 0, -5, 0, 1, 0, 0, -4, -4, 1, 1, 0, 0, 4, -4, -1, 1, 0,
        0, -2, -1, 2, 1, 0, 0, 2, -1, -2, 1, 0, 0, 4, 0, -5, 0, 1,
    ]
    static let g: [Double] = [
        1.0 / 4, 0, 0, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
        1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 24, -1.0 / 12, 1.0 / 6, 0, 0, 1,
    ]
    static let at: [Double] = [1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0, 0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1]
    static let a = transpose(at, rows: 4, columns: 6)
    static let gt = transpose(g, rows: 6, columns: 3)

    static func transpose(_ m: [Double], rows: Int, columns: Int) -> [Double] {
        (0..<(rows * columns)).map { i in m[(i % rows) * columns + i / rows] }
    }

    /// L X R^T for L (p, r), X (r, s) read through `x(i, j)`, R (q, s); written through `out(i, j, value)`.
    @inline(__always)
    static func sandwich(
        _ l: [Double], _ p: Int, _ r: Int, _ rt: [Double], _ q: Int, _ s: Int,
        _ x: (Int, Int) -> Double, _ out: (Int, Int, Double) -> Void
    ) {
        withUnsafeTemporaryAllocation(of: Double.self, capacity: p * s) { lx in
            for i in 0..<p {
                for j in 0..<s {
                    var sum = 0.0
                    for k in 0..<r where l[i * r + k] != 0 { sum += l[i * r + k] * x(k, j) }
                    lx[i * s + j] = sum
                }
            }
            for i in 0..<p {
                for j in 0..<q {
                    var sum = 0.0
                    for k in 0..<s where rt[j * s + k] != 0 { sum += lx[i * s + k] * rt[j * s + k] }
                    out(i, j, sum)
                }
            }
        }
    }
}

extension ConvPlan {
    var tilesH: Int { (ho + 3) / 4 }
    var tilesW: Int { (wo + 3) / 4 }
    func tiles(_ images: Int) -> Int { images * tilesH * tilesW }
    /// Elements per image of the transformed input (36 C tiles) or output (36 O tiles).
    var winogradPerImage: Int { 36 * max(c, o) * tilesH * tilesW }

    /// U[ξ][o][c] = (G g G^T)[ξ] for every kernel g = W[o][c].
    func winogradKernel<T: TensorScalar>(_ weight: [T]) -> [T] {
        var u = [T](repeating: 0, count: 36 * o * c)
        let (g, o, c) = (WinogradMatrices.g, o, c)
        weight.withUnsafeBufferPointer { wp in
            u.withUnsafeMutableBufferPointer { up in
                if T.self == Float.self {
                    lethe_winograd_kernel(
                        UnsafeRawPointer(wp.baseAddress!).assumingMemoryBound(to: Float.self), o * c,
                        UnsafeMutableRawPointer(up.baseAddress!).assumingMemoryBound(to: Float.self))
                    return
                }
                for oc in 0..<o {
                    for ci in 0..<c {
                        let kernel = wp.baseAddress! + (oc * c + ci) * 9
                        WinogradMatrices.sandwich(g, 6, 3, g, 6, 3, { Double(kernel[$0 * 3 + $1]) }) { i, j, value in
                            up[((i * 6 + j) * o + oc) * c + ci] = T(value)
                        }
                    }
                }
            }
        }
        return u
    }

    /// dg = G^T dU G for every (o, c), written into `dw` in (O, C, 3, 3) layout.
    func winogradKernelGradient<T: TensorScalar>(_ du: UnsafePointer<T>, into dw: UnsafeMutablePointer<T>) {
        if T.self == Float.self {
            lethe_winograd_kernel_gradient(
                UnsafeRawPointer(du).assumingMemoryBound(to: Float.self), o * c,
                UnsafeMutableRawPointer(dw).assumingMemoryBound(to: Float.self))
            return
        }
        let (gt, o, c) = (WinogradMatrices.gt, o, c)
        for oc in 0..<o {
            for ci in 0..<c {
                WinogradMatrices.sandwich(gt, 3, 6, gt, 3, 6, { Double(du[(($0 * 6 + $1) * o + oc) * c + ci]) }) {
                    i, j, value in
                    dw[(oc * c + ci) * 9 + i * 3 + j] = T(value)
                }
            }
        }
    }

    /// V[ξ][c][tile] = (B^T d B)[ξ] for the input tiles of a block (zeros outside the image).
    func winogradInput<T: TensorScalar>(_ x: UnsafePointer<T>, images: Range<Int>, into v: UnsafeMutablePointer<T>) {
        if T.self == Float.self {
            lethe_winograd_input(
                UnsafeRawPointer(x + images.lowerBound * c * h * w).assumingMemoryBound(to: Float.self), images.count,
                c, h, w,
                geo.padding, tilesH, tilesW, UnsafeMutableRawPointer(v).assumingMemoryBound(to: Float.self))
            return
        }
        let count = tiles(images.count)
        let p = geo.padding
        let bt = WinogradMatrices.bt
        for local in 0..<images.count {
            for ci in 0..<c {
                let plane = x + ((images.lowerBound + local) * c + ci) * h * w
                for ty in 0..<tilesH {
                    for tx in 0..<tilesW {
                        let (y0, x0) = (4 * ty - p, 4 * tx - p)
                        let tile = (local * tilesH + ty) * tilesW + tx
                        WinogradMatrices.sandwich(
                            bt, 6, 6, bt, 6, 6,
                            { i, j in
                                let (y, x) = (y0 + i, x0 + j)
                                return y >= 0 && y < h && x >= 0 && x < w ? Double(plane[y * w + x]) : 0
                            }
                        ) { i, j, value in v[((i * 6 + j) * c + ci) * count + tile] = T(value) }
                    }
                }
            }
        }
    }

    /// M_ξ (O, tiles) = U_ξ (O, C) x V_ξ (C, tiles) for the 36 positions.
    func winogradProducts<T: TensorScalar>(
        _ u: UnsafePointer<T>, _ v: UnsafePointer<T>, images: Int, into m: UnsafeMutablePointer<T>
    ) {
        let count = tiles(images)
        for xi in 0..<36 {
            T.gemm(
                transA: false, transB: false, m: o, n: count, k: c, alpha: 1, a: u + xi * o * c, lda: c,
                b: v + xi * c * count, ldb: count, beta: 0, c: m + xi * o * count, ldc: count)
        }
    }

    /// Y = A^T M A per tile, plus the bias, into the block's (N, O, Ho, Wo) outputs.
    func winogradOutput<T: TensorScalar>(
        _ m: UnsafePointer<T>, images: Range<Int>, into out: UnsafeMutablePointer<T>, bias: UnsafePointer<T>?
    ) {
        if T.self == Float.self {
            lethe_winograd_output(
                UnsafeRawPointer(m).assumingMemoryBound(to: Float.self), images.count, o, ho, wo, tilesH, tilesW,
                bias.map { UnsafeRawPointer($0).assumingMemoryBound(to: Float.self) },
                UnsafeMutableRawPointer(out + images.lowerBound * o * hw).assumingMemoryBound(to: Float.self))
            return
        }
        let count = tiles(images.count)
        let at = WinogradMatrices.at
        for local in 0..<images.count {
            for oc in 0..<o {
                let plane = out + ((images.lowerBound + local) * o + oc) * hw
                let add = bias?[oc] ?? 0
                for ty in 0..<tilesH {
                    for tx in 0..<tilesW {
                        let tile = (local * tilesH + ty) * tilesW + tx
                        WinogradMatrices.sandwich(
                            at, 4, 6, at, 4, 6, { Double(m[(($0 * 6 + $1) * o + oc) * count + tile]) }
                        ) { i, j, value in
                            let (y, x) = (4 * ty + i, 4 * tx + j)
                            if y < ho && x < wo { plane[y * wo + x] = T(value) + add }
                        }
                    }
                }
            }
        }
    }

    /// dM[ξ][o][tile] = (A dY A^T)[ξ] for the block's output gradient (zeros beyond the output).
    func winogradOutputGradient<T: TensorScalar>(
        _ g: UnsafePointer<T>, images: Range<Int>, into dm: UnsafeMutablePointer<T>
    ) {
        if T.self == Float.self {
            lethe_winograd_output_gradient(
                UnsafeRawPointer(g + images.lowerBound * o * hw).assumingMemoryBound(to: Float.self), images.count, o,
                ho, wo,
                tilesH, tilesW, UnsafeMutableRawPointer(dm).assumingMemoryBound(to: Float.self))
            return
        }
        let count = tiles(images.count)
        let a = WinogradMatrices.a
        for local in 0..<images.count {
            for oc in 0..<o {
                let plane = g + ((images.lowerBound + local) * o + oc) * hw
                for ty in 0..<tilesH {
                    for tx in 0..<tilesW {
                        let tile = (local * tilesH + ty) * tilesW + tx
                        WinogradMatrices.sandwich(
                            a, 6, 4, a, 6, 4,
                            { i, j in
                                let (y, x) = (4 * ty + i, 4 * tx + j)
                                return y < ho && x < wo ? Double(plane[y * wo + x]) : 0
                            }
                        ) { i, j, value in dm[((i * 6 + j) * o + oc) * count + tile] = T(value) }
                    }
                }
            }
        }
    }

    /// dU_ξ (O, C) = dM_ξ (O, tiles) x V_ξ^T (tiles, C) for the 36 positions.
    func winogradKernelProducts<T: TensorScalar>(
        _ dm: UnsafePointer<T>, _ v: UnsafePointer<T>, images: Int, into du: UnsafeMutablePointer<T>
    ) {
        let count = tiles(images)
        for xi in 0..<36 {
            T.gemm(
                transA: false, transB: true, m: o, n: c, k: count, alpha: 1, a: dm + xi * o * count, lda: count,
                b: v + xi * c * count, ldb: count, beta: 0, c: du + xi * o * c, ldc: c)
        }
    }
}
