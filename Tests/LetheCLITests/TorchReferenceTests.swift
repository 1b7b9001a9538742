import Foundation
import Testing
import LetheJSON
@testable import lethe

/// `lethe bench`'s side of the PyTorch timing server, against stand-in servers written as shell
/// scripts (the real one needs the PyTorch environment): the protocol, and the failures that must
/// leave the bench running without a reference instead of hanging or crashing.
@Suite struct TorchReferenceTests {
    /// An executable script in a fresh temporary folder.
    func script(_ body: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-torchref-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("python").path
        try ("#!/bin/sh\n" + body).write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    @Test func answersEachRequestInTurn() throws {
        // Answers with the request written into the number: ms = <length of the name><seconds>, so
        // both fields must have arrived whole (tab-separated, the name with its spaces).
        let python = try script(
            """
            echo '{"ready": true, "torch": "9.9.9+test"}'
            while IFS="$(printf '\\t')" read -r kind name seconds; do
              echo "{\\"$kind\\": \\"$name\\", \\"ms\\": ${#name}$seconds, \\"torch\\": \\"9.9.9+test\\"}"
            done
            """)
        let torch = try #require(TorchReference(python: python, threads: 2))
        #expect(torch.version == "9.9.9+test")
        #expect(torch.time("step", "VQ autoencoder", seconds: 0.5) == 140.5)
        #expect(torch.time("op", "conv2d 3x3 pad 1", seconds: 1) == 161.0)
        #expect(torch.time("step", "MAE", seconds: 2) == 32.0)
    }

    @Test func aMissingOrSilentEnvironmentIsNoReference() throws {
        #expect(TorchReference(python: "/nonexistent/python", threads: 1) == nil)
        // Starts, but never says it is ready (an import error, say): no reference, no hang.
        #expect(
            TorchReference(python: try script("echo 'Traceback: no module named torch' >&2\nexit 1\n"), threads: 1)
                == nil)
    }

    @Test func aServerThatDiesMidwayGivesNoTime() throws {
        let python = try script(
            """
            echo '{"ready": true, "torch": "9.9.9+test"}'
            read -r line
            echo '{"model": "MAE", "ms": 7.5}'
            exit 0
            """)
        let torch = try #require(TorchReference(python: python, threads: 1))
        #expect(torch.time("step", "MAE", seconds: 1) == 7.5)
        Thread.sleep(forTimeInterval: 0.3)  // gone for sure: the next request writes into a closed pipe
        #expect(torch.time("step", "MAE", seconds: 1) == nil)
    }
}

/// What `lethe runs` shows of each kind of run.
@Suite struct RunsListingTests {
    @Test func everyKindOfRunShowsItsKeyNumber() throws {
        let runs = try Runs.parse([])
        let tokenizer = try JSONParser.parse(
            #"{"stage": "tokenizer", "reconstruction_psnr": {"value": 23.93}, "codebook": {"used": 256}}"#)
        #expect(runs.keyMetrics(tokenizer) == "reconstruction 23.93 dB, 256 codes")
        #expect(runs.keyMetrics(try JSONParser.parse(#"{"psnr_hidden_region": {"model": 15.19}}"#)) == "psnr 15.19 dB")
        #expect(runs.keyMetrics(nil) == "-")
    }
}
