/// Checks a user-given covariance: square, symmetric, positive semi-definite.
enum CovarianceCheck {
    enum Problem: Equatable {
        case notSquare(row: Int, length: Int)
        case asymmetric(Int, Int)
        case notPSD(pivot: Int)
    }

    /// Cholesky of M + eps*I in Double; a pivot that falls clearly below zero means M is not PSD.
    static func check(_ m: [[Double]]) -> Problem? {
        let n = m.count
        for (i, row) in m.enumerated() where row.count != n { return .notSquare(row: i, length: row.count) }
        let scale = max(1e-300, (0..<n).map { abs(m[$0][$0]) }.max() ?? 1)
        for i in 0..<n {
            for j in 0..<i where abs(m[i][j] - m[j][i]) > 1e-9 * scale { return .asymmetric(i, j) }
        }
        let eps = 1e-10 * scale
        var l = [Double](repeating: 0, count: n * n)
        for j in 0..<n {
            var d = m[j][j] + eps
            for k in 0..<j { d -= l[j * n + k] * l[j * n + k] }
            if d < -1e-9 * scale { return .notPSD(pivot: j) }
            let root = d > 0 ? d.squareRoot() : 0
            l[j * n + j] = root
            for i in (j + 1)..<max(j + 1, n) {
                var s = m[i][j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                l[i * n + j] = root > 0 ? s / root : 0
            }
        }
        return nil
    }
}
