import Foundation
import Testing
import LetheFuzz

/// Every input of the committed fuzz corpus (`Fuzz/corpus/<target>/`, seeds and what libFuzzer found
/// in `make fuzz`) goes through its reader in every test run: a reader that crashes on one of them
/// fails the suite (by crashing it).
@Suite struct CorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus").path

    @Test(arguments: FuzzTargets.all.map(\.name))
    func everyCorpusInputIsHandled(target name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let folder = Self.corpus + "/" + name
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(files.count >= 3, "the \(name) corpus has seeds")
        for file in files {
            FuzzTargets.run(target, [UInt8](try Data(contentsOf: URL(fileURLWithPath: folder + "/" + file))))
        }
    }
}
