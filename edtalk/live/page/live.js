// The live page: the microphone to the server over WebRTC, the talking head and its voice back.
// Signalling: one POST of the complete offer to "offer" (edtalk/live/webrtc.py); the server's
// figures arrive on the "stats" data channel, the browser's own from getStats() once a second.
"use strict";

const $ = (id) => document.getElementById(id);
let pc = null;
let microphone = null;
let timer = null;
let lastDecoded = null;

function show(id, value, digits = 0) {
  $(id).textContent = value === null || value === undefined ? "-" : Number(value).toFixed(digits);
}

function photoBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.slice(reader.result.indexOf(",") + 1));
    reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

function iceGathered(connection) {
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    connection.addEventListener("icegatheringstatechange", () => {
      if (connection.iceGatheringState === "complete") resolve();
    });
  });
}

async function browserFigures() {
  const stats = await pc.getStats();
  stats.forEach((report) => {
    if (report.type !== "inbound-rtp" || report.kind !== "video") return;
    if (lastDecoded !== null) {
      const seconds = (report.timestamp - lastDecoded.timestamp) / 1000;
      show("fps", (report.framesDecoded - lastDecoded.framesDecoded) / seconds, 1);
    }
    lastDecoded = { timestamp: report.timestamp, framesDecoded: report.framesDecoded };
    if (report.jitterBufferEmittedCount) {
      show("playout-ms", (1000 * report.jitterBufferDelay) / report.jitterBufferEmittedCount);
    }
  });
}

function serverFigures(message) {
  const figures = JSON.parse(message.data);
  show("server-fps", figures.fps, 1);
  show("latency-ms", figures.latency_ms);
  show("dropped", figures.dropped);
}

async function start() {
  $("error").textContent = "";
  const file = $("photo").files[0];
  if (!file) throw new Error("choose a photo of a face first");
  $("start").disabled = true;
  $("stop").disabled = false;
  $("state").textContent = "starting";
  microphone = await navigator.mediaDevices.getUserMedia({ audio: true });
  pc = new RTCPeerConnection();
  microphone.getTracks().forEach((track) => pc.addTrack(track, microphone));
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.createDataChannel("stats").onmessage = serverFigures;
  const remote = new MediaStream();
  $("video").srcObject = remote;
  pc.ontrack = (event) => remote.addTrack(event.track);
  pc.onconnectionstatechange = () => {
    $("state").textContent = pc ? pc.connectionState : "stopped";
  };
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc);
  const response = await fetch("offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      sdp: pc.localDescription.sdp,
      type: pc.localDescription.type,
      source: await photoBase64(file),
      latency: $("latency").value,
    }),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
  await pc.setRemoteDescription(answer);
  timer = setInterval(browserFigures, 1000);
}

function stop() {
  clearInterval(timer);
  if (pc) pc.close();
  if (microphone) microphone.getTracks().forEach((track) => track.stop());
  pc = microphone = timer = lastDecoded = null;
  $("video").srcObject = null;
  $("state").textContent = "stopped";
  $("start").disabled = false;
  $("stop").disabled = true;
}

$("start").addEventListener("click", () =>
  start().catch((error) => {
    stop();
    $("error").textContent = `error: ${error.message}`;
  }),
);
$("stop").addEventListener("click", stop);
