// A tiny live line plot on a canvas: the last 60 samples, autoscaled, with the latest value.
export class Plot {
  constructor(canvas, label, colour) {
    this.canvas = canvas;
    this.label = label;
    this.colour = colour;
    this.samples = [];
  }

  push(value) {
    this.samples.push(value);
    if (this.samples.length > 60) this.samples.shift();
    this.draw();
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(width * ratio)) { canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio); }
    const g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const values = this.samples.filter((v) => v !== null);
    const max = Math.max(1, ...values) * 1.15;
    g.strokeStyle = '#ddd';
    g.beginPath();
    g.moveTo(0, height - 0.5);
    g.lineTo(width, height - 0.5);
    g.stroke();
    g.strokeStyle = this.colour;
    g.lineWidth = 2;
    g.beginPath();
    let started = false;
    this.samples.forEach((v, i) => {
      if (v === null) { started = false; return; }
      const x = (i / 59) * width;
      const y = height - 4 - (v / max) * (height - 18);
      if (started) g.lineTo(x, y); else g.moveTo(x, y);
      started = true;
    });
    g.stroke();
    const last = values.at(-1);
    g.fillStyle = '#333';
    g.font = '12px system-ui, sans-serif';
    g.fillText(`${this.label}: ${last === undefined ? '–' : last.toFixed(last < 10 ? 1 : 0)} (max ${Math.max(0, ...values).toFixed(0)})`, 6, 13);
  }
}
