import LetheRuns
import Foundation

/// Training progress on standard error: one rewritten line on a terminal, a plain line every
/// `every` steps otherwise, so logs are not flooded.
public struct Progress: Sendable {
    public let label: String
    public let total: Int
    public let every: Int
    public let interactive: Bool
    let start = Date()
    /// The step a resumed run started from (the rate and ETA count only the steps run since).
    var resumedAt = 0

    public init(label: String, total: Int, every: Int) {
        self.label = label
        self.total = total
        self.every = max(1, every)
        self.interactive = isatty(2) == 1
    }

    public func update(step: Int, loss: Double, lr: Double, imagesPerSecond: Double) {
        let done = step + 1
        guard interactive || done % every == 0 || done == total else { return }
        let elapsed = Date().timeIntervalSince(start)
        let eta = done < total ? elapsed / Double(max(1, done - resumedAt)) * Double(total - done) : 0
        let line = String(
            format: "%@ step %d/%d  loss %.5f  lr %.2e  %.0f img/s  ETA %@", label, done, total, loss, lr,
            imagesPerSecond, Progress.duration(eta))
        FileHandle.standardError.write(
            Data((interactive ? "\r\u{1B}[K" + line + (done == total ? "\n" : "") : line + "\n").utf8))
    }

    public static func duration(_ seconds: Double) -> String { Elapsed.text(seconds) }
}
