import Foundation

/// A fresh temporary folder for one test.
func scratch() -> String {
    let p = NSTemporaryDirectory() + "lethe-unlearn-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}
